// client.go holds what the client commands share: the commands that talk
// to a running registry (run, which, mcp, tools, hosts, instances, watch,
// deregister, export) name it with the same three flags.

package main

import "time"

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

// sshFlags are the ssh settings of the commands that run tools (run, mcp);
// embed them with
//
//	sshFlags `embed:""`
//
// They read no environment variable: only the client flags do.
type sshFlags struct {
	SSHConfig string        `name:"ssh-config" type:"path" help:"ssh_config file to use (ssh -F)."`
	SSHOption []string      `name:"ssh-option" sep:"none" help:"An ssh option K=V (ssh -o), repeatable."`
	SSHUser   string        `name:"ssh-user" help:"User to log in as on the hosts (ssh -l)."`
	SSHBinary string        `name:"ssh-binary" default:"ssh" hidden:"" help:"The ssh program."`
	Timeout   time.Duration `name:"timeout" type:"interval" help:"Stop the tool (on the host too) after this long (0: no limit)."`
}
