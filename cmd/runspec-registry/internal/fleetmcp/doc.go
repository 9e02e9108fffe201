// Package fleetmcp serves a runspec fleet as one MCP server: every tool
// that the active instances of a registry offer is one MCP tool, and a
// call runs it on the host the caller chooses, over SSH, through the run
// package.
//
// It is the server of "runspec-registry mcp"; the command adds the
// transports (stdio, streamable HTTP behind Handler's bearer token and
// Origin check) and the flags.
//
// # The catalog
//
// Run lists the registry's records once (GET /instances, in pages), then
// follows its change stream (GET /events) from the listing's index, and
// keeps a catalog: one MCP tool per distinct tool name that the active
// instances in the View offer, in name order, paginated with the SDK's
// cursors. A change reads again only the record it names, and only when
// its tools may have changed (a post, a revival): an expiry, a
// deregistration or a registration needs no read. A burst of changes is
// applied as one batch, each record read once; a burst that names most
// of the fleet, or a reset of the stream (its ring moved on, the registry
// restarted), is one new listing. Only the entries of the tool names a
// batch touched are built again. A tool's MCP name is its runspec name when that matches
// ^[a-zA-Z0-9_-]{1,64}$, else an alias made from that name alone (Alias),
// so that it is stable whatever other tools come and go. Its description
// is the tool's own, followed by where it runs; its inputSchema is the
// tool's own plus a runspec_host property whose enum is the active hosts
// that offer it. The description and inputSchema are those of the
// instance that registered first, as the registry groups tools. The
// records keep the tool objects as the agents posted them, x-autonomy,
// title and annotations included.
//
// When the listing changes (tools, their hosts, schemas, descriptions or
// autonomy), the SDK sends notifications/tools/list_changed; changes are
// applied at most once per Options.NotifyInterval (a second), and a
// change of the registry that changes nothing in the listing (an
// execution field) sends nothing; heartbeats are not changes at all.
//
// # Autonomy
//
// x-autonomy (manual, confirm, supervised, autonomous; unspecified means
// confirm) says what may run without a person. A tool whose hosts
// disagree gets the strictest level, and Options.Autonomy caps them all.
// manual tools are not listed and cannot be called. confirm tools are run
// only after a person accepted the exact command through MCP elicitation;
// a client that cannot elicit gets an error saying that a person must
// approve the call. supervised and autonomous tools run; a supervised
// result says that a person should review it. Just before a call runs,
// the record of the instance that runs it is read again, so that a level
// made stricter since the catalog was built applies at once.
//
// # Calls
//
// A call's runspec_host is taken out of its arguments, which are then
// validated against the tool's own inputSchema (run.Runner.Plan). The
// entry to run is chosen with run.Select (which refuses when entries on
// one host disagree), the command runs through the run package, and its
// standard output is the answer, at most Options.MaxOutput bytes of each
// stream. A non-zero exit status is an error result with the status,
// stdout and stderr. Progress notifications are sent during long runs
// when the client sent a progress token, and cancelling the call stops
// the remote command.
package fleetmcp
