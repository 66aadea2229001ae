package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProductionBuildHasNoDevStack: the production build (-tags nodev, used
// by deploy/Dockerfile) links none of the embedded dev stack: no kfake, no
// fake registry, no S3 gateway and none of what the gateway pulls in. Every
// package linked is code a PCI assessor counts as in scope.
func TestProductionBuildHasNoDevStack(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is not on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-tags", "nodev", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps -tags nodev: %v\n%s", err, out)
	}
	banned := []string{
		"github.com/pcistream/pcistream/internal/devstack",
		"github.com/pcistream/pcistream/internal/demo",
		"github.com/twmb/franz-go/pkg/kfake",
		"github.com/twmb/franz-go/pkg/sr/srfake",
		"github.com/versity/versitygw",
		"github.com/gofiber/fiber",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, b := range banned {
			if pkg == b || strings.HasPrefix(pkg, b+"/") {
				t.Errorf("the production build links %s", pkg)
			}
		}
	}
	if !strings.Contains(string(out), "github.com/twmb/franz-go/pkg/kgo") {
		t.Fatalf("go list printed no franz-go: the check would pass vacuously\n%s", out)
	}
}
