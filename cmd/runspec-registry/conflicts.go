// conflicts.go rejects serve flags that contradict each other or do not
// apply to the chosen store, at start-up and naming both sides, instead of
// ignoring one of them.

package main

import (
	"crypto/tls"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// AfterApply runs once kong has set every flag; its error stops the command
// before anything starts.
func (s *serveCmd) AfterApply(kctx *kong.Context) error {
	return s.checkFlags(explicitFlags(kctx))
}

// checkFlags applies the rules on flags that go together; set says which
// flags were given (on the command line or in the environment).
func (s *serveCmd) checkFlags(set setFlags) error {
	store, chosenBy := s.Store, ""
	switch {
	case s.InMemory:
		if _, ok := set["store"]; ok && s.Store != "memory" {
			return fmt.Errorf("%s conflicts with %s %s: give one of them", set.describe("in-memory"), set.describe("store"), s.Store)
		}
		store, chosenBy = "memory", set.describe("in-memory")
	case set["store"] != "":
		chosenBy = set.describe("store") + " " + s.Store
	default:
		chosenBy = "the default --store " + s.Store
	}
	if _, ok := set["data-dir"]; ok && store != "file" {
		return fmt.Errorf("%s applies to --store file only, not to %s", set.describe("data-dir"), chosenBy)
	}
	if store != "etcd" {
		for _, name := range slices.Sorted(maps.Keys(set)) { // the same one named each time
			if strings.HasPrefix(name, "etcd-") {
				return fmt.Errorf("%s applies to --store etcd only, not to %s", set.describe(name), chosenBy)
			}
		}
	}
	if auth, err := certReqs(s.SSLCertReqs); err != nil {
		return err
	} else if auth != tls.NoClientCert && s.SSLCertfile == "" {
		return fmt.Errorf("%s needs HTTPS (--ssl-certfile and --ssl-keyfile): client certificates come with TLS", set.describe("ssl-cert-reqs"))
	} else if auth != tls.NoClientCert && s.SSLCACerts == "" {
		return errNoCAs
	}
	if _, ok := set["ssl-ca-certs"]; ok && s.SSLCertfile == "" {
		return fmt.Errorf("%s needs HTTPS (--ssl-certfile and --ssl-keyfile)", set.describe("ssl-ca-certs"))
	}
	if _, ok := set["bind-cert-to-host"]; ok && s.SSLCertReqs == "none" {
		return fmt.Errorf("%s needs client certificates (--ssl-cert-reqs optional or required)", set.describe("bind-cert-to-host"))
	}
	if (s.SSLCertfile == "") != (s.SSLKeyfile == "") {
		given, missing := "ssl-certfile", "ssl-keyfile"
		if s.SSLCertfile == "" {
			given, missing = missing, given
		}
		return fmt.Errorf("%s needs --%s: HTTPS takes both", set.describe(given), missing)
	}
	return s.monitoringFlags.check(set)
}
