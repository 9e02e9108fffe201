// Package registry is an embeddable registry for fleets of runspec agents:
// which tools exist on which hosts, and how to run them there.
//
// runspec agents (runspec serve) register with a registry, post their tool
// list (MCP tool schemas plus execution metadata: x-command, x-run-as,
// x-become-method, x-become-flags) and heartbeat. The registry marks agents
// that stop heartbeating inactive, keeps their records for a while as
// history, and answers orchestrators, CI pipelines and chat apps that ask
// which tools exist on which hosts.
//
// # Embedding
//
// A Registry is an http.Handler serving the whole v1 protocol with routes
// relative to "/". Mount it under any prefix with http.StripPrefix, and call
// Run in a goroutine for expiry at each deadline (and checkpoints, with a
// Store):
//
//	reg, err := registry.New(registry.Options{})
//	if err != nil { ... }
//	go reg.Run(ctx)
//	mux := http.NewServeMux()
//	mux.Handle("/registry/", http.StripPrefix("/registry", reg))
//
// The same operations are methods (Register, Heartbeat, UpdateTools,
// Deregister, Purge, Instance, Instances, Tools, Tool, Hosts), for programs
// and tests that need no network. New starts no goroutine; Options.Now
// injects a clock. Errors match ErrNotFound and ErrInvalid with errors.Is.
//
// # HTTP API
//
// The whole protocol, v1 and every addition, is described in the
// repository's docs/protocol.md, and served as an OpenAPI 3.1 document at
// GET /openapi.json (rendered at GET /docs). In short:
//
// Writes (they need an identity when keys or client certificates are set:
// Options.APIKey, Options.Keys, Options.ClientCertificates):
//
//	POST   /instances                  register: {"instance_id","name","version","host"[,"heartbeat_interval"]} → 201
//	POST   /instances/{id}/heartbeat   {} or {"system":{...}} or no body → {"status":"ack"|"refresh"}
//	POST   /instances/{id}/tools       {"tools":[...]} → 200, 404 for an unknown id
//	DELETE /instances/{id}             mark inactive → 200 (also for an unknown id); ?purge=true (admin) deletes
//
// Reads:
//
//	GET /instances[?active=&host=&name=]   every record (default: active and inactive)
//	GET /instances/{id}
//	GET /tools[?active=&host=]             tools grouped by name (default: active only)
//	GET /tools/{name}[?active=&host=]
//	GET /hosts[?active=&name=]             one entry per (host, agent name)
//	GET /export/superputty[?user=]         SSH sessions for SuperPuTTY (XML)
//	GET /export/mobaxterm[?user=]          SSH sessions for MobaXterm
//	GET /export/ansible[?user=&label=]     Ansible dynamic inventory (the --list JSON)
//	GET /export/rundeck[?user=&format=]    Rundeck resource model (JSON; YAML with format=yaml)
//	GET /export/ssh-config[?user=&label=]  an ssh_config with a Host block per host
//	GET /events                            Server-Sent Events of every change
//	GET /health[?detail=true]
//	GET /openapi.json, /docs, /version
//
// Reads take ?detail=true for the fields v1 leaves out (instance ids,
// liveness, owners, labels, and the command that runs a tool: RunCommand),
// and ?label=k=v filters.
//
// Listings also take ?limit=N (and the cursor the answer's Link header
// gives): the body stays a JSON array and the next page is in a
// Link: <?cursor=…&limit=N>; rel="next" header, relative so that it works
// under any prefix. Errors are JSON {"detail": ...}; 422 details list each bad
// field as {"loc","msg","type"}. On writes the checks run in the order rate
// limit (429, with Retry-After), identity and origin (403), content type
// (415), body size (413), body (422).
//
// # Watching
//
// Every read answers X-Registry-Index, the index of the last change that
// affects that answer (registration, tool list, active or inactive,
// deregistration, deletion; a heartbeat that only moves last_seen is not a
// change), and an ETag; If-None-Match answers 304. An answer shows every
// change up to its index; a listing, read a chunk at a time, may also show
// changes made while it was read (a client following from the index sees
// them again), and a single record or tool shows none after it. A blocking query
// ?index=N&wait=30s holds a read until its index passes N: a change closes a
// channel that all of its waiters share, so a waiter costs its request and a
// timer, and waiters of one tool are not woken by other tools. GET /events
// streams changes as Server-Sent Events. Call ReleaseWaiters before shutting
// the server down. The index starts at the clock in microseconds, so it does
// not go backwards across restarts.
//
// # Liveness
//
// An instance is active while now - last_seen <= 3 × its heartbeat interval
// (the server default, or the heartbeat_interval it registered with). Reads
// compute this from the clock, so no answer shows an instance active after
// its deadline; Purge makes the change final, and Run calls Purge from a timer
// set at the next deadline. Inactive records are deleted after
// Options.RetainInactive.
//
// # Architecture
//
// The file list is the map. Everything a read needs is in memory, in indexes
// maintained by every write (view.go): instances in registration order, tool
// entries by name (each listing its instances in registration order), (host,
// name) groups sorted by host then name, a heap of the inactive instances,
// oldest first (inactiveheap.go), and a heap of due times (dueheap.go). A
// lookup of one tool touches only that tool's entry, so its cost does not
// grow with the fleet. Tool schemas are interned by content (tools.go):
// 20,000 hosts offering the same tool share one copy of its schema and of
// identical execution fields. The protocol's rules and the wording of every
// 422 are in validate.go, once; the HTTP layer (http.go) decodes JSON types
// and the library's methods validate.
//
// New chooses the write path once (writer.go): localWriter (local.go)
// writes to a Store, or to none, then to the view, one id at a time under
// its shard's write lock; clusterWriter (cluster.go) writes to a Cluster and
// waits until the view has applied the revision the write committed, the
// view being fed only by the Cluster's change stream. Each write method has
// one body, and the view does not know which path it has.
//
// Liveness (liveness.go): a heartbeat of an active instance takes no
// registry-wide lock: it finds the instance in one of 64 shards and moves
// last_seen with a compare-and-swap on a word that packs last_seen and the
// active bit, racing safely with expiry, which uses the same word. It
// allocates nothing. The due heap is not touched by heartbeats: when an
// entry comes due, settle finds the later deadline and moves it, so its work
// is one step per instance per TTL, never a scan. run.go drives it (Purge,
// Run, checkpoints); guard.go holds expiries back during a mass expiry;
// pending.go retries the registry's own writes that its Store refused.
//
// Answers (list.go, encode.go, respond.go): fixed parts of records are
// encoded to JSON once; every answer (listings, pages, lookups, exports) is
// encoded in 32 KiB chunks with the read lock released between chunks, even
// inside one large item, and written a chunk at a time, each write moving
// the write deadline, so a slow client never holds the lock and a client
// that never reads costs one chunk; the waiters that one change wakes share
// one encoding, and lookups are cached, within byte budgets (flights.go,
// cache.go for GET /tools/{name}). The change
// index of each answer and the blocking queries that wait for it are in
// waiters.go, whose wake-ups are coalesced; events.go keeps a ring of
// changes encoded once for every stream.
//
// Who may do what (identity.go, auth.go, audit.go): keys and client
// certificates are identities with roles; an instance belongs to the
// identity that first registered it; refusals are throttled, and logged
// once per address (IPv6: /64) and identity per minute.
//
// # Replicas
//
// When Options.Cluster is set (store/etcd is one, in its own module;
// store/memcluster another, in memory, for tests), several registries share
// one fleet: writes go to the Cluster and are answered once this
// registry's view shows them, the view follows the Cluster's change stream
// (so every replica answers the same, and the change index is the
// Cluster's revision), a heartbeat is the Cluster's keep-alive and expiry
// is the Cluster's. Run must be running. An unreachable Cluster makes
// writes fail with ErrUnavailable (503 with Retry-After), reads carry
// X-Registry-Stale: true, and Health reports it (GET /health answers 503
// {"status":"degraded"}).
package registry
