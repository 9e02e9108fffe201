// Command argvtool is the tool that sshtest installs on its test host: it
// prints what it was given, so that tests can check what arrived through
// ssh, a shell and sudo or su. Its output is three lines: its arguments
// (without the program name) as one JSON array, the name of the user it
// runs as (id -un), and its environment variables whose names start with
// SSHTEST_ as one JSON object. sshtest.ParseTool reads it.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

func main() {
	user, err := exec.Command("id", "-un").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "argvtool: id -un:", err)
		os.Exit(2)
	}
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "SSHTEST_") {
			env[k] = v
		}
	}
	args := os.Args[1:]
	if args == nil {
		args = []string{}
	}
	e := json.NewEncoder(os.Stdout)
	e.SetEscapeHTML(false)
	if err := e.Encode(args); err != nil {
		os.Exit(2)
	}
	fmt.Println(strings.TrimSpace(string(user)))
	if err := e.Encode(env); err != nil {
		os.Exit(2)
	}
}
