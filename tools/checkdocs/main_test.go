package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func testRepo() *Repo {
	r := NewRepo([]string{
		"README.md",
		"docs/guide.md",
		"docs/img/idle.png",
		"integration/llamaserver_test.go",
		"patches/0001-x.patch",
	})
	r.AddTests("integration/llamaserver_test.go", []byte(
		"package integration\n\nfunc TestLlamaServerFakeTwin(t *testing.T) {}\n"+
			"func BenchmarkLlamaServerDecode(b *testing.B) {}\n"+
			"func FuzzParseLLMLibrary(f *testing.F) {}\n"+
			"func helperTestNotOne() {}\n"))
	r.AddTests("patches/0001-x.patch", []byte(
		"--- a/ml/device.go\n+++ b/ml/device.go\n+func TestNotATestFile(t *testing.T) {}\n"+
			"--- a/ml/device_test.go\n+++ b/ml/device_test.go\n@@ -1,3 +1,6 @@\n"+
			" func TestUpstreamHas(t *testing.T) {}\n+func TestPatchAdds(t *testing.T) {}\n-func TestPatchRemoves(t *testing.T) {}\n"))
	return r
}

func TestCheckDoc(t *testing.T) {
	cases := []struct {
		name  string
		file  string
		doc   string
		want  []string
		count Counts
	}{
		{
			name:  "good links",
			file:  "docs/guide.md",
			doc:   "See [the readme](../README.md), [img](img/idle.png \"idle\"), [folder](img/), [root](/docs/guide.md#top) and ![x](img/idle.png).\n",
			count: Counts{Links: 5},
		},
		{
			name:  "broken link",
			file:  "docs/guide.md",
			doc:   "# Title\n\nRaw runs: [runs](benchmarks/run6-all/)\nand [a page](native.md#section).\n",
			want:  []string{"docs/guide.md:3: broken link benchmarks/run6-all/", "docs/guide.md:4: broken link native.md#section"},
			count: Counts{Links: 2},
		},
		{
			name:  "outside the repository",
			file:  "docs/guide.md",
			doc:   "[report](../../shared/report.txt)\n",
			want:  []string{"docs/guide.md:1: broken link ../../shared/report.txt"},
			count: Counts{Links: 1},
		},
		{
			name: "not checked: schemes, anchors, code",
			file: "docs/guide.md",
			doc: "[a](https://example.com/x.md) [b](mailto:x@example.com) [c](#section) [d](http://x)\n" +
				"`[e](gone.md)` and\n```\n[f](gone.md)\n```\n",
		},
		{
			name:  "link text wrapped over two lines",
			file:  "README.md",
			doc:   "the [bench\nscripts](bench/README.md) here\n",
			want:  []string{"README.md:2: broken link bench/README.md"},
			count: Counts{Links: 1},
		},
		{
			name:  "reference definition",
			file:  "README.md",
			doc:   "[x][1]\n\n[1]: docs/gone.md\n[2]: docs/guide.md\n",
			want:  []string{"README.md:3: broken link docs/gone.md"},
			count: Counts{Links: 2},
		},
		{
			name:  "present test names",
			file:  "README.md",
			doc:   "`TestLlamaServerFakeTwin`, `TestLlamaServerFakeTwin/unset`, `BenchmarkLlamaServerDecode`, `envconfig.FuzzParseLLMLibrary`, `TestPatchAdds`, `TestUpstreamHas`\n",
			count: Counts{Names: 6},
		},
		{
			name:  "missing test name",
			file:  "docs/guide.md",
			doc:   "Run\n`TestForkReliabilityDiscovery` (gone), `TestPatchRemoves`, `TestNotATestFile`.\n",
			want:  []string{"docs/guide.md:2: no test named TestForkReliabilityDiscovery", "docs/guide.md:2: no test named TestPatchRemoves", "docs/guide.md:2: no test named TestNotATestFile"},
			count: Counts{Names: 3},
		},
		{
			name:  "prefix citation",
			file:  "docs/guide.md",
			doc:   "`TestLlamaServer*` exist, `TestForkReliability*` do not; `TestLlamaServer` alone is no test.\n",
			want:  []string{"docs/guide.md:1: no test named TestForkReliability*", "docs/guide.md:1: no test named TestLlamaServer"},
			count: Counts{Names: 3},
		},
		{
			name:  "names in fenced code and commands, code span over two lines",
			file:  "docs/guide.md",
			doc:   "```sh\ngo test -run 'TestGone|TestLlamaServerFakeTwin' ./integration/\n```\n\nthe `go test -run\nTestGone2` command\n",
			want:  []string{"docs/guide.md:2: no test named TestGone", "docs/guide.md:6: no test named TestGone2"},
			count: Counts{Names: 3},
		},
		{
			name:  "fence in a list item, then links and names in one paragraph",
			file:  "docs/guide.md",
			doc:   "- step:\n\n      ```sh\n      go test -run TestGone3\n      ```\n\n[gone](gone/) and\n`TestGone4`\n",
			want:  []string{"docs/guide.md:4: no test named TestGone3", "docs/guide.md:7: broken link gone/", "docs/guide.md:8: no test named TestGone4"},
			count: Counts{Links: 1, Names: 2},
		},
		{
			name: "not names: prose, lowercase after the prefix",
			file: "docs/guide.md",
			doc:  "TestForkReliability in prose is not checked; `Testing`, `Fuzzy`, `Benchmarks` are words.\n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			probs, n := testRepo().CheckDoc(tc.file, []byte(tc.doc))
			var got []string
			for _, p := range probs {
				got = append(got, p.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if n != tc.count {
				t.Errorf("counts = %+v, want %+v", n, tc.count)
			}
		})
	}
}
