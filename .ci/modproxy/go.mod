// A tool of .ci/install-check, outside the workspace: it is never
// published, and its dependency stays out of the registry's modules.
module modproxy

go 1.26.0

require golang.org/x/mod v0.41.0
