// client_test.go tests the flags that client commands share, embedded in a
// command as they will be.

package main

import (
	"bytes"
	"testing"

	"github.com/alecthomas/kong"
	"github.com/google/go-cmp/cmp"
)

func TestClientFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want clientFlags
	}{
		{"defaults", nil, nil, clientFlags{Registry: "http://127.0.0.1:8765"}},
		{"flags", []string{"--registry", "https://reg:8765", "--registry-key", "k", "--registry-cert", "/etc/ca.pem"}, nil,
			clientFlags{Registry: "https://reg:8765", RegistryKey: "k", RegistryCert: "/etc/ca.pem"}},
		{"environment", nil, map[string]string{
			"RUNSPEC_REGISTRY_URL": "https://reg:8765", "RUNSPEC_REGISTRY_KEY": "k", "RUNSPEC_REGISTRY_CERT": "/etc/ca.pem",
		}, clientFlags{Registry: "https://reg:8765", RegistryKey: "k", RegistryCert: "/etc/ca.pem"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var c struct {
				Tools struct {
					clientFlags `embed:""`
				} `cmd:""`
			}
			p, err := kong.New(&c, kong.Exit(func(int) {}), kong.Writers(&bytes.Buffer{}, &bytes.Buffer{}))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Parse(append([]string{"tools"}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c.Tools.clientFlags); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
