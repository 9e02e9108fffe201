// Package etcd is a registry.Cluster backed by etcd.
package etcd
