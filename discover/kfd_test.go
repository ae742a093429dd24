package discover

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestReadKFDNodes(t *testing.T) {
	tests := []struct {
		name string
		root string
		want []kfdNode
		// wantErrIn are substrings of the error; none means a nil error.
		wantErrIn []string
	}{
		{
			name: "rx 9060 xt",
			root: "testdata/kfd/rx9060xt",
			want: []kfdNode{
				{Node: 1, GfxTarget: "gfx1200", GfxTargetVersion: 120000, PCIID: "0000:03:00.0", VendorID: 0x1002, DeviceID: 0x7590, UniqueID: 5425409937598371542, DRMRenderMinor: 128},
			},
		},
		{
			name: "mixed, numeric order, odd names skipped",
			root: "testdata/kfd/mixed",
			want: []kfdNode{
				{Node: 1, GfxTarget: "gfx1201", GfxTargetVersion: 120001, PCIID: "0000:0c:00.0", VendorID: 0x1002, DeviceID: 0x7551, UniqueID: 0x1234567890abcdef, DRMRenderMinor: 128},
				{Node: 2, GfxTarget: "gfx1100", GfxTargetVersion: 110000, PCIID: "0001:23:00.0", VendorID: 0x1002, DeviceID: 0x744c, UniqueID: 1<<64 - 1, DRMRenderMinor: 129},
				{Node: 10, GfxTarget: "gfx90a", GfxTargetVersion: 90010, PCIID: "0000:8a:01.0", VendorID: 0x1002, DeviceID: 0x740f, UniqueID: 42, DRMRenderMinor: 130},
				{Node: 11, GfxTarget: "gfx1151", GfxTargetVersion: 110501, PCIID: "0000:c4:00.0", VendorID: 0x1002, DeviceID: 0x1586, UniqueID: 7, DRMRenderMinor: 131},
			},
		},
		{
			name: "garbled nodes reported, good ones kept",
			root: "testdata/kfd/garbled",
			want: []kfdNode{
				{Node: 1, GfxTarget: "gfx1200", GfxTargetVersion: 120000, PCIID: "0000:03:00.0", VendorID: 0x1002, DeviceID: 0x7590, UniqueID: 99, DRMRenderMinor: 128},
			},
			wantErrIn: []string{
				filepath.FromSlash("nodes/2/properties") + `: line 3 "\x00\x01garbage here and there": want "key value"`,
				filepath.FromSlash("nodes/3/properties") + ": gfx_target_version 121700: minor 17 and stepping 0 must each be at most 15",
				filepath.FromSlash("nodes/4/properties"),
				filepath.FromSlash("nodes/5/properties") + ": GPU node (simd_count 64) without gfx_target_version",
				filepath.FromSlash("nodes/6/properties") + `: location_id "70000": want an unsigned decimal of at most 16 bits`,
			},
		},
		{
			name: "no such root",
			root: "testdata/kfd/does-not-exist",
		},
		{
			name: "root without sys",
			root: "testdata",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readKFDNodes(tt.root)
			if len(tt.wantErrIn) == 0 && err != nil {
				t.Fatalf("readKFDNodes(%q) error: %v", tt.root, err)
			}
			if len(tt.wantErrIn) > 0 && err == nil {
				t.Fatalf("readKFDNodes(%q) error = nil, want one", tt.root)
			}
			for _, s := range tt.wantErrIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("readKFDNodes(%q) mismatch (-want +got):\n%s", tt.root, diff)
			}
		})
	}
}

// TestReadKFDNodesFilesystem covers cases git cannot hold: an empty nodes
// directory, a properties path that is a directory, an oversized file.
func TestReadKFDNodesFilesystem(t *testing.T) {
	write := func(t *testing.T, root, node, content string) {
		t.Helper()
		dir := filepath.Join(root, filepath.FromSlash(kfdNodesDir), node)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "properties"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := "gfx_target_version 120000\nlocation_id 768\ndomain 0\n"
	tests := []struct {
		name      string
		setup     func(t *testing.T, root string)
		wantNodes []int
		wantErrIn []string
		wantIs    error
	}{
		{
			name: "empty nodes directory",
			setup: func(t *testing.T, root string) {
				if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(kfdNodesDir)), 0o755); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "properties is a directory",
			setup: func(t *testing.T, root string) {
				write(t, root, "1", good)
				if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(kfdNodesDir), "2", "properties"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			wantNodes: []int{1},
			wantErrIn: []string{filepath.Join("2", "properties")},
		},
		{
			name: "oversized file",
			setup: func(t *testing.T, root string) {
				write(t, root, "1", good+strings.Repeat("x 1\n", kfdPropertiesMax))
				write(t, root, "2", good)
			},
			wantNodes: []int{2},
			wantErrIn: []string{filepath.Join("1", "properties") + ": longer than 65536 bytes"},
		},
		{
			name: "nodes path is a file",
			setup: func(t *testing.T, root string) {
				dir := filepath.Join(root, filepath.FromSlash(kfdNodesDir))
				if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(dir, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantErrIn: []string{"reading KFD topology"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			tt.setup(t, root)
			got, err := readKFDNodes(root)
			var gotNodes []int
			for _, n := range got {
				gotNodes = append(gotNodes, n.Node)
			}
			if diff := cmp.Diff(tt.wantNodes, gotNodes, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("nodes mismatch (-want +got):\n%s", diff)
			}
			if len(tt.wantErrIn) == 0 {
				if err != nil {
					t.Fatalf("error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("error = nil, want one")
			}
			for _, s := range tt.wantErrIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error %q should not read as a missing tree", err)
			}
		})
	}
}

func TestGfxTargetName(t *testing.T) {
	tests := []struct {
		version uint64
		want    string
		wantErr string
	}{
		{version: 120000, want: "gfx1200"},
		{version: 120001, want: "gfx1201"},
		{version: 110000, want: "gfx1100"},
		{version: 110501, want: "gfx1151"},
		{version: 100300, want: "gfx1030"},
		{version: 90010, want: "gfx90a"},
		{version: 90402, want: "gfx942"},
		{version: 90006, want: "gfx906"},
		{version: 80003, want: "gfx803"},
		{version: 91515, want: "gfx9ff"},
		{version: 0, wantErr: "major version 0"},
		{version: 9999, wantErr: "major version 0"},
		{version: 121600, wantErr: "minor 16 and stepping 0"},
		{version: 120016, wantErr: "minor 0 and stepping 16"},
	}
	for _, tt := range tests {
		t.Run(tt.want+tt.wantErr, func(t *testing.T) {
			got, err := gfxTargetName(tt.version)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("gfxTargetName(%d) = %q, %v; want error containing %q", tt.version, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("gfxTargetName(%d) error: %v", tt.version, err)
			}
			if got != tt.want {
				t.Errorf("gfxTargetName(%d) = %q, want %q", tt.version, got, tt.want)
			}
		})
	}
}

func TestParseKFDProperties(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string
	}{
		{name: "empty", in: "", want: map[string]string{}},
		{name: "pairs", in: "gfx_target_version 120000\nlocation_id 768\n", want: map[string]string{"gfx_target_version": "120000", "location_id": "768"}},
		{name: "crlf, blank lines, no final newline", in: "a 1\r\n\r\n  \nb 2", want: map[string]string{"a": "1", "b": "2"}},
		{name: "extra spaces", in: "a   1\t\n", want: map[string]string{"a": "1"}},
		{name: "key only", in: "a 1\nb\n", wantErr: `line 2 "b": want "key value"`},
		{name: "three fields", in: "a 1 2\n", wantErr: `line 1 "a 1 2"`},
		{name: "repeated key", in: "a 1\na 2\n", wantErr: `line 2: key "a" repeated`},
		{name: "long junk truncated", in: strings.Repeat("z", 200), wantErr: strings.Repeat("z", 64) + `..."`},
		{name: "line longer than a properties file", in: "a 1\n" + strings.Repeat("z", kfdPropertiesMax+2), wantErr: "after line 1: bufio.Scanner: token too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseKFDProperties([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseKFDProperties(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseKFDProperties(%q) error: %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseKFDProperties(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

var kfdPCIIDPattern = regexp.MustCompile(`^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// FuzzParseKFDProperties feeds junk to the properties parser and the node
// builder: neither may panic, accepted input re-serializes to the same map,
// and a GPU node always has a gfx name and a well-formed PCI id.
func FuzzParseKFDProperties(f *testing.F) {
	for _, root := range []string{"testdata/kfd/rx9060xt", "testdata/kfd/mixed", "testdata/kfd/garbled"} {
		files, _ := filepath.Glob(filepath.Join(root, filepath.FromSlash(kfdNodesDir), "*", "properties"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("gfx_target_version 90010\nlocation_id 65535\ndomain 4294967295\n"))
	f.Add([]byte("gfx_target_version 18446744073709551615\n"))
	f.Add([]byte("gfx_target_version -1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		props, err := parseKFDProperties(data)
		if err != nil {
			return
		}
		keys := make([]string, 0, len(props))
		for k := range props {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			b.WriteString(k + " " + props[k] + "\n")
		}
		again, err := parseKFDProperties([]byte(b.String()))
		if err != nil {
			t.Fatalf("re-serialized properties %q do not parse: %v", b.String(), err)
		}
		if diff := cmp.Diff(props, again); diff != "" {
			t.Fatalf("re-serialized properties differ (-first +second):\n%s", diff)
		}

		node, isGPU, err := kfdNodeFromProperties(7, props)
		if err != nil || !isGPU {
			return
		}
		name, err := gfxTargetName(node.GfxTargetVersion)
		if err != nil || name != node.GfxTarget || !strings.HasPrefix(name, "gfx") {
			t.Fatalf("node %+v: gfxTargetName = %q, %v", node, name, err)
		}
		if node.PCIID != "" && !kfdPCIIDPattern.MatchString(node.PCIID) {
			t.Fatalf("node %+v: malformed PCIID %q", node, node.PCIID)
		}
		if node.Node != 7 {
			t.Fatalf("node number %d, want 7", node.Node)
		}
	})
}

func TestKFDGfxTarget(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, filepath.FromSlash(kfdNodesDir), "1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// location_id 768 is bus 3: 0000:03:00.0.
	if err := os.WriteFile(filepath.Join(dir, "properties"), []byte("gfx_target_version 120000\nlocation_id 768\ndomain 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ root, pci, want string }{
		{root, "0000:03:00.0", "gfx1200"},
		{root, "0000:04:00.0", ""},
		{t.TempDir(), "0000:03:00.0", ""}, // no KFD topology
	} {
		if got := KFDGfxTarget(tt.root, tt.pci); got != tt.want {
			t.Errorf("KFDGfxTarget(%s, %s) = %q, want %q", tt.root, tt.pci, got, tt.want)
		}
	}
}
