// client.go holds what the client commands share: the commands that talk
// to a running registry (run, which, mcp, tools, hosts, instances, watch,
// deregister, export) name it with the same three flags.

package main

// clientFlags are the flags of every client command; embed them with
//
//	clientFlags `embed:""`
//
// The key is the one the registry checks on writes (its
// RUNSPEC_REGISTRY_API_KEY); reads need none.
type clientFlags struct {
	Registry     string `name:"registry" default:"http://127.0.0.1:8765" env:"RUNSPEC_REGISTRY_URL" help:"Base URL of the registry."`
	RegistryKey  string `name:"registry-key" env:"RUNSPEC_REGISTRY_KEY" help:"API key sent as X-API-Key. Prefer the environment: a flag shows in ps."`
	RegistryCert string `name:"registry-cert" env:"RUNSPEC_REGISTRY_CERT" type:"path" help:"PEM file of the CA certificates to trust for an https registry (default: the system's)."`
}
