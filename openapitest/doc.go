// Package openapitest holds tests only: they drive a real registry over HTTP
// and validate every request and answer against the registry's own
// /openapi.json with kin-openapi's openapi3filter. It is a module of its
// own so that kin-openapi is a dependency of no other module of the
// repository, and nothing imports it.
package openapitest
