// Command allscreen is the appliance's command line: analyse images, tune
// and measure the segmentation, prepare model inputs, evaluate models, list
// and export stored results. Each subcommand lives in its own file and
// registers itself in init.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
)

// command is one subcommand. run returns errUsage for bad arguments.
type command struct {
	name    string
	summary string
	run     func(args []string) error
}

var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("allscreen: duplicate command " + c.name)
	}
	commands[c.name] = c
}

// errUsage is returned by a command whose arguments are wrong; its flag set
// has already printed the usage.
var errUsage = errors.New("usage")

// errSomeFailed is returned when a command processed every input it could
// but at least one failed; the failures were already reported.
var errSomeFailed = errors.New("some inputs failed")

func usage() {
	fmt.Fprintf(os.Stderr, "usage: allscreen COMMAND [flags] [args]\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'allscreen COMMAND -h' for a command's flags.\n")
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "allscreen: unknown command %q\n", args[0])
		usage()
		return 2
	}
	err := c.run(args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errSomeFailed):
		return 1
	default:
		fmt.Fprintf(os.Stderr, "allscreen %s: %v\n", c.name, err)
		return 1
	}
}

// newFlags returns a flag set for a subcommand that reports errors instead
// of exiting, with a usage line.
func newFlags(name, argsUsage string) *flag.FlagSet {
	fs := flag.NewFlagSet("allscreen "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: allscreen %s [flags] %s\n", name, argsUsage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and returns the positional arguments, mapping a
// flag error to errUsage. Flags may follow positional arguments too
// ("analyze a.png --json"); after "--" everything is positional.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// multiFlag is a flag that may be given several times.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

func (m *multiFlag) Set(v string) error {
	*m = append(*m, v)
	return nil
}
