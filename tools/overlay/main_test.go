package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeFiles lays out files (slash paths relative to root) with contents.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheck(t *testing.T) {
	upstream := map[string]string{
		"discover/runner.go":   "package discover\n\nfunc GPUDevices() {}\n\ntype bootstrapRunner struct{}\n\nfunc (r *bootstrapRunner) GetPort() int { return 0 }\n",
		"discover/gpu.go":      "package discover\n\nvar deviceMu int\n",
		"envconfig/config.go":  "package envconfig\n\nfunc LLMLibrary() string { return \"\" }\n",
		"envconfig/sub/sub.go": "package sub\n\nfunc Taken() {}\n",
	}
	const mod = "example.com/fork"
	cases := []struct {
		name    string
		overlay map[string]string
		pkgs    []string
		want    []string // substrings, one per problem, in order
	}{
		{
			name: "clean",
			overlay: map[string]string{
				"discover/policy.go":      "package discover\n\nimport _ \"example.com/fork/envconfig\"\n\nfunc RankLibraries() {}\n\nfunc (r *bootstrapRunner) Extra() {}\n",
				"discover/policy_test.go": "package discover\n\nimport \"testing\"\n\nfunc TestRank(t *testing.T) {}\n",
				"discover/doc.go":         "// Package discover is module-only documentation; doc.go never collides.\npackage discover\n",
				"envconfig/list.go":       "package envconfig\n\nfunc ParseList() {}\n",
			},
			pkgs: []string{"discover", "envconfig"},
		},
		{
			name:    "file upstream already has",
			overlay: map[string]string{"discover/gpu.go": "package discover\n"},
			pkgs:    []string{"discover"},
			want:    []string{"discover/gpu.go: upstream already has this file"},
		},
		{
			name:    "name collision",
			overlay: map[string]string{"discover/mine.go": "package discover\n\nvar deviceMu int\n\nfunc (r *bootstrapRunner) GetPort() int { return 1 }\n"},
			pkgs:    []string{"discover"},
			want: []string{
				"discover/mine.go: declares deviceMu, which upstream's discover/gpu.go already declares",
				"discover/mine.go: declares bootstrapRunner.GetPort, which upstream's discover/runner.go already declares",
			},
		},
		{
			name: "both copies of one package",
			overlay: map[string]string{
				"discover/mine.go":  "package discover\n\nimport (\n\t_ \"example.com/fork/envconfig\"\n\t_ \"github.com/ollama/ollama/envconfig\"\n)\n",
				"envconfig/list.go": "package envconfig\n",
			},
			pkgs: []string{"discover", "envconfig"},
			want: []string{"imports both example.com/fork/envconfig and github.com/ollama/ollama/envconfig"},
		},
		{
			name:    "import of a non-overlay package",
			overlay: map[string]string{"discover/mine.go": "package discover\n\nimport _ \"example.com/fork/integration\"\n"},
			pkgs:    []string{"discover"},
			want:    []string{"imports example.com/fork/integration, which is not an overlay package"},
		},
		{
			name:    "wrong package name",
			overlay: map[string]string{"discover/mine.go": "package other\n"},
			pkgs:    []string{"discover"},
			want:    []string{"discover/mine.go: package other, but upstream's discover is package discover"},
		},
		{
			name:    "package upstream lacks",
			overlay: map[string]string{"nothere/x.go": "package nothere\n"},
			pkgs:    []string{"nothere"},
			want:    []string{"nothere/x.go: upstream has no Go package nothere to join"},
		},
		{
			name: "new package nested in an overlay package",
			overlay: map[string]string{
				"discover/policy.go":              "package discover\n\nfunc RankLibraries() {}\n",
				"discover/gpuwatch/watch.go":      "package gpuwatch\n\nimport _ \"example.com/fork/discover\"\n\n// Names upstream's discover declares are free here.\nfunc GPUDevices() {}\n",
				"discover/gpuwatch/watch_test.go": "package gpuwatch_test\n",
				"discover/gpuwatch/doc.go":        "// Package gpuwatch is new.\npackage gpuwatch\n",
			},
			pkgs: []string{"discover", "discover/gpuwatch/"},
		},
		{
			name:    "nested package not listed",
			overlay: map[string]string{"discover/gpuwatch/watch.go": "package gpuwatch\n"},
			pkgs:    []string{"discover"},
			want:    []string{"discover/gpuwatch: a Go package inside an overlay package; list it"},
		},
		{
			name:    "new package named otherwise than its folder",
			overlay: map[string]string{"discover/gpuwatch/watch.go": "package watch\n"},
			pkgs:    []string{"discover", "discover/gpuwatch"},
			want:    []string{"discover/gpuwatch/watch.go: package watch in the new package discover/gpuwatch; name it gpuwatch"},
		},
		{
			name:    "nested package upstream has joins it",
			overlay: map[string]string{"envconfig/sub/x.go": "package sub\n\nfunc Taken() {}\n"},
			pkgs:    []string{"envconfig", "envconfig/sub"},
			want:    []string{"envconfig/sub/x.go: declares Taken, which upstream's envconfig/sub/sub.go already declares"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tree, repo := t.TempDir(), t.TempDir()
			writeFiles(t, tree, upstream)
			writeFiles(t, repo, tc.overlay)
			t.Chdir(repo)
			files, problems := overlay{tree: tree, module: mod, pkgs: tc.pkgs}.check()
			seen := map[string]bool{}
			for _, f := range files {
				if seen[f.rel] {
					t.Errorf("%s collected twice", f.rel)
				}
				seen[f.rel] = true
			}
			if len(problems) != len(tc.want) {
				t.Fatalf("problems = %q, want %d matching %q", problems, len(tc.want), tc.want)
			}
			for i := range problems {
				if !strings.Contains(problems[i], tc.want[i]) {
					t.Errorf("problem %d = %q, want it to contain %q", i, problems[i], tc.want[i])
				}
			}
		})
	}
}

func TestApplyRewritesOverlayImports(t *testing.T) {
	tree, repo := t.TempDir(), t.TempDir()
	writeFiles(t, tree, map[string]string{
		"discover/runner.go":  "package discover\n",
		"envconfig/config.go": "package envconfig\n",
	})
	writeFiles(t, repo, map[string]string{
		"discover/policy.go":                 "package discover\n\n// Why: a comment that must survive.\nimport (\n\t\"example.com/fork/envconfig\"\n\t\"github.com/ollama/ollama/ml\"\n)\n\nvar _ = envconfig.X\nvar _ = ml.Y\n",
		"discover/doc.go":                    "// Package discover, module-only.\npackage discover\n",
		"discover/testdata/kfd/1/properties": "gfx_target_version 120000\n",
	})
	t.Chdir(repo)
	writeFiles(t, repo, map[string]string{"envconfig/list.go": "package envconfig\n"})
	o := overlay{tree: tree, module: "example.com/fork", pkgs: []string{"discover", "envconfig"}}
	files, problems := o.check()
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if err := o.apply(files); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(tree, "discover", "policy.go"))
	if err != nil {
		t.Fatal(err)
	}
	want := "package discover\n\n// Why: a comment that must survive.\nimport (\n\t\"github.com/ollama/ollama/envconfig\"\n\t\"github.com/ollama/ollama/ml\"\n)\n\nvar _ = envconfig.X\nvar _ = ml.Y\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("rewritten file (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(tree, "discover", "doc.go")); err == nil {
		t.Error("doc.go was copied; it is module-only")
	}
	if _, err := os.Stat(filepath.Join(tree, "discover", "testdata", "kfd", "1", "properties")); err != nil {
		t.Errorf("testdata not copied: %v", err)
	}
}

func TestApplyNewNestedPackage(t *testing.T) {
	tree, repo := t.TempDir(), t.TempDir()
	writeFiles(t, tree, map[string]string{"discover/runner.go": "package discover\n"})
	writeFiles(t, repo, map[string]string{
		"discover/doc.go":                          "// Package discover, module-only.\npackage discover\n",
		"discover/policy.go":                       "package discover\n",
		"discover/gpuwatch/doc.go":                 "// Package gpuwatch watches GPUs.\npackage gpuwatch\n",
		"discover/gpuwatch/watch.go":               "package gpuwatch\n\nimport \"example.com/fork/discover\"\n\nvar _ = discover.X\n",
		"discover/gpuwatch/testdata/sysfs/busy":    "100\n",
		"discover/gpuwatch/testdata/fuzz/FuzzX/s1": "go test fuzz v1\n",
	})
	t.Chdir(repo)
	o := overlay{tree: tree, module: "example.com/fork", pkgs: []string{"discover", "discover/gpuwatch"}}
	files, problems := o.check()
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if err := o.apply(files); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(tree, "discover", "gpuwatch", "watch.go"))
	if err != nil {
		t.Fatal(err)
	}
	want := "package gpuwatch\n\nimport \"github.com/ollama/ollama/discover\"\n\nvar _ = discover.X\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("rewritten file (-want +got):\n%s", diff)
	}
	// A new package's doc.go is its package documentation: copied. The
	// doc.go of a package that joins upstream's is not.
	for rel, copied := range map[string]bool{
		"discover/gpuwatch/doc.go":                 true,
		"discover/gpuwatch/testdata/sysfs/busy":    true,
		"discover/gpuwatch/testdata/fuzz/FuzzX/s1": true,
		"discover/doc.go":                          false,
	} {
		if _, err := os.Stat(filepath.Join(tree, filepath.FromSlash(rel))); (err == nil) != copied {
			t.Errorf("%s: copied %v, want %v", rel, err == nil, copied)
		}
	}
}
