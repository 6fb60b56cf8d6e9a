package command

import (
	"context"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestMergeEnv(t *testing.T) {
	got := MergeEnv([]string{"A=1", "SOURCE_DATE_EPOCH=5", "B=2"}, []string{"SOURCE_DATE_EPOCH", "B=3", "C=4"})
	want := []string{"A=1", "B=3", "C=4"}
	if !slices.Equal(got, want) {
		t.Fatalf("MergeEnv = %q, want %q", got, want)
	}
}

// TestRunPassesNoInheritedDescriptor gives this process a descriptor
// without close-on-exec, as make and Packer hand their children (fd 50
// here): the command must not get it.
func TestRunPassesNoInheritedDescriptor(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Dup2(int(f.Fd()), 50); err != nil { // Dup2 leaves close-on-exec off
		t.Fatal(err)
	}
	defer syscall.Close(50)
	out, err := Run(context.Background(), nil, nil, "sh", "-c", "ls /proc/$$/fd")
	if err != nil {
		t.Fatal(err)
	}
	fds := strings.Fields(out)
	if slices.Contains(fds, "50") {
		t.Errorf("the command got fd 50 (its descriptors: %v); an inherited descriptor must not reach it", fds)
	}
	if !slices.Contains(fds, "1") {
		t.Errorf("the command's descriptors %v lack standard output", fds)
	}
}
