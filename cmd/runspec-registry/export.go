// export.go holds the export command: each of the registry's exports
// (GET /export/...) printed as the registry wrote it, for the tools that
// ops teams use: an Ansible inventory (also as an inventory script, with
// --list and --host), a Rundeck resource model, an ssh_config, SuperPuTTY
// and MobaXterm session files.

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/alecthomas/kong"
)

// exportCmd is the export command: one subcommand per format.
type exportCmd struct {
	Ansible    exportAnsibleCmd `cmd:"" help:"Ansible dynamic inventory (also an inventory script: --list, --host H; see contrib/ansible)."`
	Rundeck    exportRundeckCmd `cmd:"" help:"Rundeck resource model (JSON, or YAML with --format yaml)."`
	SSHConfig  exportSimpleCmd  `cmd:"" name:"ssh-config" help:"An ssh_config with a Host block per host (ssh -F FILE HOST)."`
	SuperPuTTY exportSimpleCmd  `cmd:"" name:"superputty" help:"SuperPuTTY sessions (XML)."`
	MobaXterm  exportSimpleCmd  `cmd:"" name:"mobaxterm" help:"MobaXterm sessions (.mxtsessions)."`
}

// exportFlags are the flags every export takes.
type exportFlags struct {
	clientFlags `embed:""`
	labelFlags  `embed:""`
	User        string `name:"user" help:"The user to log in as, written into each entry."`
	Inactive    bool   `name:"inactive" help:"Include the hosts of inactive instances."`
}

// query is the export's query string.
func (f *exportFlags) query() (url.Values, error) {
	labels, err := f.labels()
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if f.User != "" {
		q.Set("user", f.User)
	}
	if f.Inactive {
		q.Set("active", "false")
	}
	return labels.addTo(q), nil
}

// get reads the export at path.
func (f *exportFlags) get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	cl, err := f.connect()
	if err != nil {
		return nil, err
	}
	return cl.Get(ctx, path, q)
}

// exportSimpleCmd prints an export that takes only the common flags.
type exportSimpleCmd struct {
	exportFlags `embed:""`
}

// Run prints the export that the command's name names.
func (c *exportSimpleCmd) Run(ctx context.Context, kctx *kong.Context) error {
	q, err := c.query()
	if err != nil {
		return err
	}
	body, err := c.get(ctx, "/export/"+kctx.Selected().Name, q)
	if err != nil {
		return safeError(err)
	}
	_, err = kctx.Stdout.Write(body)
	return err
}

// exportRundeckCmd prints the Rundeck resource model.
type exportRundeckCmd struct {
	exportFlags `embed:""`
	Format      string `name:"format" default:"json" enum:"json,yaml" help:"json (resourcejson) or yaml (resourceyaml)."`
}

// Run prints the resource model.
func (c *exportRundeckCmd) Run(ctx context.Context, kctx *kong.Context) error {
	q, err := c.query()
	if err != nil {
		return err
	}
	q.Set("format", c.Format)
	body, err := c.get(ctx, "/export/rundeck", q)
	if err != nil {
		return safeError(err)
	}
	_, err = kctx.Stdout.Write(body)
	return err
}

// exportAnsibleCmd prints the Ansible inventory, answering an inventory
// script's --list and --host.
type exportAnsibleCmd struct {
	exportFlags `embed:""`
	List        bool   `name:"list" xor:"mode" help:"The whole inventory (the default; what Ansible asks an inventory script)."`
	HostVars    string `name:"host" xor:"mode" placeholder:"HOST" help:"The variables of one host ({} for a host the inventory does not have)."`
}

// Run prints the inventory, or one host's variables.
func (c *exportAnsibleCmd) Run(ctx context.Context, kctx *kong.Context) error {
	q, err := c.query()
	if err != nil {
		return err
	}
	body, err := c.get(ctx, "/export/ansible", q)
	if err != nil {
		return safeError(err)
	}
	if c.HostVars == "" {
		_, err = kctx.Stdout.Write(body)
		return err
	}
	var inv struct {
		Meta struct {
			HostVars map[string]json.RawMessage `json:"hostvars"`
		} `json:"_meta"`
	}
	if err := json.Unmarshal(body, &inv); err != nil {
		return fmt.Errorf("registry: GET /export/ansible: %w", err)
	}
	vars, ok := inv.Meta.HostVars[c.HostVars]
	if !ok {
		vars = json.RawMessage("{}")
	}
	return writeJSON(kctx.Stdout, vars)
}
