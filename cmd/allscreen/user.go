package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"allscreen/screening"
)

func init() {
	register(command{"user", "add a review station account (user add NAME --role technician|reviewer)", runUser})
}

// runUser adds an account. The password, then (for a reviewer) the signing
// PIN, are read one per line from standard input, so they never appear in
// the process list or the shell's history:
//
//	printf '%s\n%s\n' "$PASSWORD" "$PIN" | allscreen user add "Dr A" --role reviewer
func runUser(argv []string) error {
	fs := newFlags("user", "add NAME --role technician|reviewer  (password, then PIN, on stdin)")
	state := fs.String("state", screening.DefaultStateDir, "the daemon's state `DIR`")
	role := fs.String("role", "", "technician (sees results) or reviewer (reclassifies, signs with a PIN)")
	args, err := parseFlags(fs, argv)
	if err != nil {
		return err
	}
	if len(args) != 2 || args[0] != "add" {
		fs.Usage()
		return errUsage
	}
	r, err := screening.ParseRole(*role)
	if err != nil {
		return err
	}
	return addUser(context.Background(), os.Stdin, os.Stdout, *state, args[1], r)
}

func addUser(ctx context.Context, in io.Reader, out io.Writer, state, name string, role screening.Role) error {
	lines := bufio.NewScanner(io.LimitReader(in, 4096))
	next := func(what string) (string, error) {
		if !lines.Scan() {
			return "", fmt.Errorf("no %s on standard input (one per line: password, then the reviewer's PIN)", what)
		}
		return strings.TrimRight(lines.Text(), "\r"), nil
	}
	pw, err := next("password")
	if err != nil {
		return err
	}
	var pin string
	if role == screening.RoleReviewer {
		if pin, err = next("PIN"); err != nil {
			return err
		}
	}
	if err := screening.CheckNewCredentials(name, role, pw, pin); err != nil {
		return err
	}
	store, err := screening.OpenExisting(ctx, state, screening.Options{})
	if errors.Is(err, screening.ErrNoStore) {
		return fmt.Errorf("%w: start allscreend once first", err)
	}
	if err != nil {
		return err
	}
	defer store.Close()
	u, err := store.AddUser(ctx, name, role, pw, pin)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "added %s (%s)\n", u.Name, u.Role)
	return nil
}
