// conflicts_test.go tests that contradictory or irrelevant serve flags stop
// the command at parse time, naming both sides.

package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestConflictingFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // "" when the flags go together
	}{
		{name: "defaults"},
		{name: "in-memory", args: []string{"--in-memory"}},
		{name: "in-memory and store memory", args: []string{"--in-memory", "--store", "memory"}},
		{name: "in-memory=false and store etcd", args: []string{"--in-memory=false", "--store", "etcd"}},
		{name: "in-memory and store etcd", args: []string{"--in-memory", "--store", "etcd"},
			wantErr: "--in-memory conflicts with --store etcd: give one of them"},
		{name: "in-memory and store file", args: []string{"--store", "file", "--in-memory"},
			wantErr: "--in-memory conflicts with --store file: give one of them"},
		{name: "in-memory and store from the environment", args: []string{"--in-memory"}, env: map[string]string{"RUNSPEC_REGISTRY_STORE": "etcd"},
			wantErr: "--in-memory conflicts with RUNSPEC_REGISTRY_STORE (--store) etcd: give one of them"},
		{name: "in-memory from the environment and store file", args: []string{"--store", "file"}, env: map[string]string{"RUNSPEC_REGISTRY_IN_MEMORY": "true"},
			wantErr: "RUNSPEC_REGISTRY_IN_MEMORY (--in-memory) conflicts with --store file: give one of them"},

		{name: "data-dir with the file store", args: []string{"--data-dir", "/srv/reg"}},
		{name: "data-dir with store file", args: []string{"--store", "file", "--data-dir", "/srv/reg"}},
		{name: "data-dir with in-memory", args: []string{"--in-memory", "--data-dir", "/srv/reg"},
			wantErr: "--data-dir applies to --store file only, not to --in-memory"},
		{name: "data-dir with store memory", args: []string{"--store", "memory", "--data-dir", "/srv/reg"},
			wantErr: "--data-dir applies to --store file only, not to --store memory"},
		{name: "data-dir with store etcd", args: []string{"--store", "etcd", "--data-dir", "/srv/reg"},
			wantErr: "--data-dir applies to --store file only, not to --store etcd"},
		{name: "data-dir from the environment with store etcd", args: []string{"--store", "etcd"}, env: map[string]string{"RUNSPEC_REGISTRY_DATA_DIR": "/srv/reg"},
			wantErr: "RUNSPEC_REGISTRY_DATA_DIR (--data-dir) applies to --store file only, not to --store etcd"},
		{name: "in-memory, data-dir and etcd-endpoints", args: []string{"--in-memory", "--data-dir", "X", "--etcd-endpoints", "http://e:2379"},
			wantErr: "--data-dir applies to --store file only, not to --in-memory"},

		{name: "etcd flags with store etcd", args: []string{"--store", "etcd", "--etcd-endpoints", "http://e:2379", "--etcd-prefix", "/p/",
			"--etcd-cacert", "ca.pem", "--etcd-cert", "c.pem", "--etcd-key", "k.pem", "--etcd-keepalive-window", "1s"}},
		{name: "etcd-endpoints with the default store", args: []string{"--etcd-endpoints", "http://e:2379"},
			wantErr: "--etcd-endpoints applies to --store etcd only, not to the default --store file"},
		{name: "etcd-prefix with in-memory", args: []string{"--in-memory", "--etcd-prefix", "/p/"},
			wantErr: "--etcd-prefix applies to --store etcd only, not to --in-memory"},
		{name: "etcd-cacert with store file", args: []string{"--store", "file", "--etcd-cacert", "ca.pem"},
			wantErr: "--etcd-cacert applies to --store etcd only, not to --store file"},
		{name: "etcd-cert and etcd-key with store memory: the first named", args: []string{"--store", "memory", "--etcd-key", "k.pem", "--etcd-cert", "c.pem"},
			wantErr: "--etcd-cert applies to --store etcd only, not to --store memory"},
		{name: "hidden etcd-keepalive-window", args: []string{"--etcd-keepalive-window", "1s"},
			wantErr: "--etcd-keepalive-window applies to --store etcd only, not to the default --store file"},
		{name: "etcd endpoints from the environment", env: map[string]string{"RUNSPEC_REGISTRY_ETCD_ENDPOINTS": "http://e:2379"},
			wantErr: "RUNSPEC_REGISTRY_ETCD_ENDPOINTS (--etcd-endpoints) applies to --store etcd only, not to the default --store file"},
		{name: "etcd endpoints and store from the environment", env: map[string]string{"RUNSPEC_REGISTRY_ETCD_ENDPOINTS": "http://e:2379", "RUNSPEC_REGISTRY_STORE": "etcd"}},
		{name: "etcd prefix from the environment with store memory from it", env: map[string]string{"RUNSPEC_REGISTRY_ETCD_PREFIX": "/p/", "RUNSPEC_REGISTRY_STORE": "memory"},
			wantErr: "RUNSPEC_REGISTRY_ETCD_PREFIX (--etcd-prefix) applies to --store etcd only, not to RUNSPEC_REGISTRY_STORE (--store) memory"},

		{name: "certificate and key", args: []string{"--ssl-certfile", "c.pem", "--ssl-keyfile", "k.pem"}},
		{name: "certificate without key", args: []string{"--ssl-certfile", "c.pem"},
			wantErr: "--ssl-certfile needs --ssl-keyfile: HTTPS takes both"},
		{name: "key without certificate", args: []string{"--ssl-keyfile", "k.pem"},
			wantErr: "--ssl-keyfile needs --ssl-certfile: HTTPS takes both"},
		{name: "key from the environment without certificate", env: map[string]string{"RUNSPEC_REGISTRY_SSL_KEYFILE": "k.pem"},
			wantErr: "RUNSPEC_REGISTRY_SSL_KEYFILE (--ssl-keyfile) needs --ssl-certfile: HTTPS takes both"},

		{name: "backup has its own data-dir", args: []string{"backup", "--data-dir", "/srv/reg", "copy.db"}, env: map[string]string{"RUNSPEC_REGISTRY_STORE": "etcd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.env, tt.args...)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tt.wantErr, got); diff != "" {
				t.Errorf("error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
