module github.com/runspec/registry

go 1.26.0

require (
	github.com/google/go-cmp v0.7.0
	github.com/julienschmidt/httprouter v1.3.0
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3
	go.etcd.io/bbolt v1.5.0
	golang.org/x/text v0.14.0
	golang.org/x/time v0.16.0
)

require golang.org/x/sys v0.45.0 // indirect
