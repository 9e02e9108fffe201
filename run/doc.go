// Package run turns a registry answer into a safe remote command and runs
// it over OpenSSH: the tool's entry on a host (its x-command, x-run-as,
// x-become-method and x-become-flags), the caller's arguments and
// environment become one checked Plan, whose exact ssh command line can
// be printed (a dry run) or run.
//
//	r, _ := run.New(run.Options{})
//	entry, _ := run.Select(tool, "web-1", "")                // the one entry to run there
//	plan, _ := r.Plan(run.Call{Tool: tool, Host: entry, Args: args})
//	fmt.Println(plan)                                         // the dry run: the ssh command line
//	status, err := r.Run(ctx, plan, os.Stdout, os.Stderr)     // the remote exit status
//
// # The remote command
//
// It is built as runspec builds it, as a list of words, each quoted for a
// POSIX shell by one helper (internal/shell), so that no value is ever
// read by a shell as anything but itself:
//
//	x-run-as   environment   remote command
//	--------   -----------   ----------------------------------------------------------
//	none       none          COMMAND ARGS
//	none       KEY=val …     KEY=val … COMMAND ARGS
//	USER       none          METHOD FLAGS -u USER COMMAND ARGS
//	USER       KEY=val …     METHOD FLAGS -u USER env KEY=val … COMMAND ARGS
//
// METHOD is x-become-method: sudo, pbrun or dzdo, or sudo when it is
// absent or empty. su takes its command differently: su FLAGS -c
// 'COMMAND ARGS' USER (with env KEY=val … in front of COMMAND when there
// is an environment), the command line being one argument of -c and so
// quoted twice. FLAGS is x-become-flags split into words. COMMAND is
// x-command: one program path, one word, never split. An empty or absent
// x-run-as runs the command as the SSH user; x-become-method and
// x-become-flags are then unused (but still checked).
//
// ARGS follow runspec's tool-call convention: for each argument that the
// caller gives, in the order of the tool's inputSchema, --NAME VALUE; a
// boolean is a bare --NAME when true and nothing when false; null (where
// the schema allows it) is nothing; an array repeats --NAME ITEM for each
// item. Numbers are written
// as JSON writes them, in their shortest form (3, 2.5, 1e+21, not 3.0).
// Objects, and arrays inside arrays, cannot be passed as flags and are
// refused. A caller may write a name with '_' for '-' (dry_run for
// dry-run). The arguments are validated against the tool's inputSchema
// (JSON Schema, with github.com/santhosh-tekuri/jsonschema/v6) and every
// violation is reported by field (*ArgsError); only the properties that
// the schema declares can be given, so a tool without an inputSchema takes
// no arguments. ParseFlags reads the same arguments from runspec's
// command-line form (--environment staging --dry-run --tag a --tag b),
// ParseJSON from --args-json.
//
// The environment comes only from the caller (Call.Env), never from the
// record. Its keys must match [A-Za-z_][A-Za-z0-9_]*: values are quoted,
// keys cannot be. Note that with a run-as user the environment goes
// through env, so the become method must allow running env (in sudoers,
// that is allowing everything); without one the remote shell sets it.
//
// # What is refused
//
// Quoting makes values inert; it cannot make every record safe. Plan
// refuses, with errors that match ErrRefused and one of:
//
//   - ErrBecomeMethod: a become method other than sudo, su, pbrun, dzdo;
//   - ErrBecomeFlag: a become flag that is not on the method's allow-list
//     (below), or a word that is not a flag at all: quoting cannot make
//     sudo -H /bin/sh -c … safe;
//   - ErrRunAs: an x-run-as that is not a plain user name (letters,
//     digits, '_', '.', '@', '-', not starting with '-' or '.');
//   - ErrHost: a host that is not a plain host name or IP address (a host
//     starting with '-' is an ssh option: -oProxyCommand=…);
//   - ErrCommand: an empty or absent x-command, or one that starts with
//     '-' or contains '=' (sudo and env would read it as an option or an
//     assignment);
//   - ErrNotString: an execution field that is not a JSON string;
//
// and control characters (or invalid UTF-8) in any of these fields. Every
// field present is checked, also those a row does not use. The become
// flags allowed are flags that change neither who runs nor what runs,
// take no value and keep the command attached to the session:
//
//	sudo   -H --set-home, -n --non-interactive, -S --stdin,
//	       -k --reset-timestamp, -P --preserve-groups (short ones combine: -Hn)
//	su     -l --login
//	pbrun  -n --null_input, -p --pipe_mode
//	dzdo   -H, -n
//
// Never, for instance, sudo -u -g -s -i -E -C -D -R -b -A or --, nor su
// -c -s -m -p or - (write -l).
//
// # Which entry runs
//
// A grouped tool has one entry per instance: two agents on one host give
// two. Select returns the one entry to run on a host: when the host's
// active entries agree on what they would run it runs once; when they
// differ it refuses, listing their instance ids (ErrAmbiguous), and an
// instance id picks one. An unknown host is an error that lists the hosts
// that offer the tool. ActiveHosts and RandomHost help to run everywhere
// or anywhere.
//
// # Running
//
// Runner.Run runs the plan with the system's OpenSSH client, so that
// ~/.ssh/config, the agent, known_hosts, ProxyJump and ControlMaster all
// apply; always with -o BatchMode=yes (no prompt can hang a run) and -T,
// and with "--" before the destination. Options add -F, -o and -l.
// ssh's standard input is a pipe of Run's own, never the calling
// process's; stdout and stderr stream to the caller's writers; the remote
// exit status is returned, and 255, ssh's own failure, matches ErrSSH.
//
// Cancelling the context stops the remote command, not only the local
// ssh: the remote command runs inside a small POSIX sh wrapper that starts
// it in a process group of its own and, when its standard input (Run's
// pipe) reaches end of input, sends SIGTERM to the command's descendants
// and their groups, then SIGKILL to those groups after about 5 s. On cancellation
// Run closes the pipe, waits for ssh to exit (Options.WaitDelay, 10 s by
// default), then kills ssh. A connection that dies stops the command the
// same way. The limit is the SSH user's rights: a command run as another
// user through sudo or su gets SIGTERM through sudo or su, which relay it
// to the command; processes that such a command leaves behind, and a
// command that ignores SIGTERM, are beyond the reach of an SSH user who
// is not root. The wrapper needs /bin/sh and setsid (util-linux, on every
// Linux; elsewhere the command shares the wrapper's group and only its
// descendants are signalled), and uses ps to find descendants. The SSH
// user's login shell, and with su the target user's, must be a POSIX
// shell (sh, dash, bash, ksh, zsh): they read the quoted command line (a
// fish or csh reads quotes differently, and nologin refuses). The plan's
// SSH field, and its String, show the wrapper: it is the exact command
// line that runs. Run it from a terminal, or with a standard input that
// stays open: at end of input (</dev/null, ssh -n, Ctrl-D) the wrapper
// stops the command.
//
// # Trust
//
// Run executes what agents registered, on the hosts they registered, with
// the rights of the SSH user and of whatever x-run-as and sudoers let it
// become: whoever can post a tool to the registry (whoever holds its write
// key, or anyone when it has none) decides what the runner executes.
// This package makes sure that the caller's values stay data and that a
// record cannot smuggle in another program, user, host or ssh option; it
// cannot make a registered x-command harmless. Run tools from a registry
// whose write key you trust, as an SSH user whose sudo rights are limited
// to those tools.
package run
