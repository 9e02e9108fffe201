module github.com/runspec/registry/cmd/runspec-registry

go 1.26.0

require (
	github.com/alecthomas/kong v1.17.0
	github.com/google/go-cmp v0.7.0
	github.com/runspec/registry v0.0.0
)

require (
	github.com/julienschmidt/httprouter v1.3.0 // indirect
	go.etcd.io/bbolt v1.5.0 // indirect
	golang.org/x/sys v0.45.0 // indirect
	golang.org/x/time v0.16.0 // indirect
)

replace (
	github.com/runspec/registry => ../..
	github.com/runspec/registry/store/etcd => ../../store/etcd
)
