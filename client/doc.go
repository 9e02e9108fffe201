// Package client talks to a runspec registry over HTTP: the agent side
// (register, post tools, heartbeat, deregister) and the discovery side
// (which tools exist on which hosts, and watching that change).
//
// It speaks the v1 wire protocol, so it works with any v1 registry, and
// uses this module's additions when the registry has them: the agent's
// heartbeat_interval, and blocking queries for watches. Values are the root
// package's types (registry.Instance, registry.Tool, registry.Host), and
// errors match the root package's sentinels: errors.Is(err, ErrNotFound)
// and errors.Is(err, registry.ErrNotFound) agree.
//
// # Clients
//
// New returns a Client for a base URL; Options set the API key, the TLS
// certificate authorities (RootCAs, or CAFile as runspec's --registry-cert),
// timeouts, the back-off bounds and its jitter source, and a slog.Logger.
// Nothing starts a goroutine behind the caller's back.
//
//	c, err := client.New("https://registry.example:8765", client.Options{
//		APIKey: key,
//		CAFile: "/etc/runspec/registry-ca.pem",
//	})
//
// # Agents
//
// An Agent keeps one instance registered with its tools for as long as its
// Run runs, and deregisters it when Run's context ends (or Close is
// called):
//
//	a, err := client.NewAgent(c, client.AgentConfig{
//		Name:  "ops",
//		Tools: []json.RawMessage{json.RawMessage(`{"name":"hello","x-command":"echo hello"}`)},
//	})
//	go a.Run(ctx) // or run it in the foreground
//
// Run heartbeats every HeartbeatInterval (jittered by ±10%), posts the
// tools again when the registry answers refresh, registers again when the
// registry no longer knows the instance (it restarted without a store, or
// the record expired), and while the registry is down retries with
// exponential back-off and random jitter, so that a fleet does not come back
// in step. State changes and errors go to AgentConfig.OnEvent and to the
// Logger; Agent.State says where the agent stands.
//
// # Discovery and watches
//
// Tools, Tool, Instances, Instance and Hosts read once; Filter narrows them
// (its zero value selects active instances only). WatchTool and WatchTools
// return iterators that yield the current answer, then each change:
//
//	for u, err := range c.WatchTool(ctx, "deploy") {
//		if err != nil {
//			log.Print(err) // the watch retries by itself
//			continue
//		}
//		fmt.Println(u.Found, u.HostNames())
//	}
//
// A watch is a loop of blocking queries (GET ...?index=N&wait=D): the
// registry holds each read until something that affects it changes, so a
// change is seen within a round trip, and an idle watch costs one request
// per Options.Wait; unchanged answers come back as 304 Not Modified
// (If-None-Match). A watch keeps going across registry restarts (after a
// failure it reads without blocking, and follows an index that went
// backwards) and transport errors (jittered exponential back-off), and ends
// when its context ends or the loop breaks. It runs in the caller's
// goroutine. Against a registry without blocking queries (the v1 reference
// answers at once, without X-Registry-Index) a watch still works: it polls,
// with the back-off between polls growing up to Options.MaxBackoff.
//
// # Change stream
//
// A watch reads its whole answer again at each change: at fleet scale,
// keep a copy instead. InstancePages lists the records once, page by
// page, with the change index of the first page; Events then yields each
// change after that index (an instance registered, posted tools, went
// active or inactive, was deregistered or deleted), naming the instance
// it is about, so that only that record needs reading again:
//
//	for e, err := range c.Events(ctx, index) {
//		if err != nil {
//			continue // the stream is opened again by itself, resuming
//		}
//		if e.Kind == registry.EventReset {
//			// the registry no longer holds the changes: list again
//		}
//	}
//
// A broken stream is opened again after the last event it yielded, so
// that nothing is lost or repeated; when the registry cannot resume it
// (its ring of recent changes moved on, it restarted) the stream yields a
// reset, after which the program lists again.
package client
