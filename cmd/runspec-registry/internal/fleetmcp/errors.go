// errors.go defines the package's sentinel errors, for errors.Is.

package fleetmcp

import "errors"

var (
	// ErrAutonomy: a name that is not an autonomy level.
	ErrAutonomy = errors.New("fleetmcp: unknown autonomy level")
	// ErrView: a View that cannot be used (a bad glob, a label that is
	// not K=V).
	ErrView = errors.New("fleetmcp: invalid view")
	// ErrOptions: Options that cannot be used.
	ErrOptions = errors.New("fleetmcp: invalid options")
	// ErrUnauthorized: an HTTP request without the bearer token, or with
	// another one.
	ErrUnauthorized = errors.New("fleetmcp: missing or wrong bearer token")
	// ErrOrigin: an HTTP request from a browser page of another origin
	// (neither the server's own nor loopback).
	ErrOrigin = errors.New("fleetmcp: origin not allowed")
)
