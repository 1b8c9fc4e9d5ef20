package main

import (
	"os/exec"
	"strings"
	"testing"
)

// linked lists the packages a main package links (go list -deps).
func linked(t *testing.T, pkg string) map[string]bool {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	m := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		m[p] = true
	}
	return m
}

// TestDaemonLinksNoNetworkServer pins what the capture daemon may link, in
// the spirit of tailscale's deptest: the daemon keeps no network (the
// review station is its own process), and nothing of the tests, the
// browser or the FUSE harness reaches it.
func TestDaemonLinksNoNetworkServer(t *testing.T) {
	forbidden := []string{"net/http", "crypto/tls", "testing", "allscreen/internal/station",
		"github.com/chromedp/chromedp", "github.com/santhosh-tekuri/jsonschema/v6", "github.com/hanwen/go-fuse/v2/fs"}
	daemon := linked(t, "allscreen/cmd/allscreend")
	for _, p := range forbidden {
		if daemon[p] {
			t.Errorf("cmd/allscreend links %s", p)
		}
	}
	// The check sees what it looks for: the review station serves HTTP.
	if station := linked(t, "allscreen/cmd/allscreen-review"); !station["net/http"] || !station["allscreen/internal/station"] {
		t.Error("go list -deps did not report the review station's own packages: the check proves nothing")
	}
}
