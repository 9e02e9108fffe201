// rules_test.go checks each rule with the values it must accept and those
// it must refuse: hosts that are ssh options, patterns or URIs, user names
// with shell syntax, text with control characters, become methods and
// flags off the allow-lists.

package rules

import "testing"

func TestHost(t *testing.T) {
	for _, h := range []string{"web-1", "web_1.example.com", "10.0.0.1", "::1", "fe80::1", "a", "A-1"} {
		if err := Host(h); err != nil {
			t.Errorf("Host(%q) = %v, want nil", h, err)
		}
	}
	for _, h := range []string{"", "-oProxyCommand=id", "user@web", "web:22", "ssh://web", "web 1", "web#1", "*", "web?",
		"!web", `"web"`, "'web'", "web,db", "%h", "fe80::1%eth0", "web\n1", "{{x}}", "wéb", string(make([]byte, 257))} {
		if err := Host(h); err == nil {
			t.Errorf("Host(%q) = nil, want an error", h)
		}
	}
}

func TestUserName(t *testing.T) {
	tests := map[string]bool{
		"oracle": true, "svc.deploy": true, "a_b-c": true, "user@example.com": true,
		"": false, "-u": false, ".hidden": false, "root; id": false, "a b": false, "$(id)": false, "a\nb": false, "%u": false,
	}
	for s, want := range tests {
		if got := UserName(s); got != want {
			t.Errorf("UserName(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestText(t *testing.T) {
	tests := map[string]bool{
		"plain": true, "héllo 日本": true, "": true, "tab\there": false, "esc\x1b[31m": false, "del\x7f": false,
		"c1\u009b": false, "bad\xff": false,
	}
	for s, want := range tests {
		if got := Text(s); got != want {
			t.Errorf("Text(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestBecome(t *testing.T) {
	for _, m := range []string{"sudo", "su", "pbrun", "dzdo"} {
		if !BecomeMethod(m) {
			t.Errorf("BecomeMethod(%q) = false", m)
		}
	}
	for _, m := range []string{"", "sh -c", "doas", "SUDO", "sudo "} {
		if BecomeMethod(m) {
			t.Errorf("BecomeMethod(%q) = true", m)
		}
	}
	tests := []struct {
		method, word string
		want         bool
	}{
		{"sudo", "-H", true}, {"sudo", "-Hn", true}, {"sudo", "--set-home", true}, {"sudo", "-HnSkP", true},
		{"sudo", "-u", false}, {"sudo", "-Hu", false}, {"sudo", "--", false}, {"sudo", "/bin/sh", false}, {"sudo", "-E", false},
		{"su", "-l", true}, {"su", "-", false}, {"su", "-c", false}, {"su", "-lc", false},
		{"pbrun", "-n", true}, {"pbrun", "-u", false},
		{"dzdo", "-H", true}, {"dzdo", "-Hn", false},
		{"sh", "-c", false},
	}
	for _, tt := range tests {
		if got := BecomeFlag(tt.method, tt.word); got != tt.want {
			t.Errorf("BecomeFlag(%q, %q) = %v, want %v", tt.method, tt.word, got, tt.want)
		}
	}
}
