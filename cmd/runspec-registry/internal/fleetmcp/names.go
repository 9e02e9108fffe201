// names.go gives each runspec tool its MCP name: the name itself when MCP
// clients take it as it is, else an alias derived from that name alone,
// so that it never changes when other tools come and go.

package fleetmcp

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// maxName is the longest MCP name given out: the limit of the strictest
// clients (64, as the APIs of several model vendors).
const maxName = 64

// ValidName reports whether name matches ^[a-zA-Z0-9_-]{1,64}$, the tool
// names that every MCP client accepts.
func ValidName(name string) bool {
	if name == "" || len(name) > maxName {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return false
		}
	}
	return true
}

func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// Alias returns the MCP name of a runspec tool name: the name itself when
// ValidName, otherwise the name with every other byte replaced by '_',
// cut to 55 bytes, then '_' and the first 8 hex digits of the SHA-256 of
// the whole name ("deploy.web" is "deploy_web_" and 8 hex digits). It
// depends on the name alone.
func Alias(name string) string {
	if ValidName(name) {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := hex.EncodeToString(sum[:4])
	var b strings.Builder
	b.Grow(maxName)
	for i := 0; i < len(name) && b.Len() < maxName-1-len(suffix); i++ {
		if c := name[i]; nameByte(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	b.WriteByte('_')
	b.WriteString(suffix)
	return b.String()
}
