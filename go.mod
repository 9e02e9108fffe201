module github.com/runspec/registry

go 1.26.0

require (
	github.com/alecthomas/kong v1.17.0
	github.com/julienschmidt/httprouter v1.3.0
	golang.org/x/time v0.16.0
)
