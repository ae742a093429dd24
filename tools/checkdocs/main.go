// Command checkdocs checks that this repository's Markdown describes what
// exists in it, so that a doc cannot keep pointing at files or tests that
// were removed or live on another line (issue 27).
//
// Over every tracked *.md file it checks:
//
//   - every relative link target, [text](path) or [text](path#anchor) and
//     reference definitions [label]: path, names a tracked file or a folder
//     holding tracked files, relative to the Markdown file (a target starting
//     with / is relative to the repository root). Targets with a scheme
//     (http:, https:, mailto:, ...) and pure #anchors are not checked.
//   - every Go test, benchmark or fuzz name cited in code (`TestXxx`,
//     `BenchmarkXxx`, `FuzzXxx`, optionally package-qualified and followed
//     by * or /subtest; inline code spans and fenced blocks) is defined by a
//     func in a tracked *_test.go file, or added to a _test.go file by a
//     tracked patch (the upstream pull requests and patches/ add tests to
//     upstream's files). A name ending in * matches as a prefix.
//
// Each problem is one line, FILE:LINE: broken link PATH or FILE:LINE: no
// test named NAME, and the exit status is 1; otherwise one summary line.
//
// Usage (from anywhere in the repository):
//
//	go run ./tools/checkdocs        # or scripts/check-docs.sh
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path"
	"regexp"
	"sort"
	"strings"
)

// Repo is what a doc may refer to: tracked paths and defined test names.
type Repo struct {
	Files map[string]bool // tracked files, slash paths relative to the root
	Dirs  map[string]bool // folders holding tracked files, "." the root
	Tests map[string]bool // Test*, Benchmark*, Fuzz* funcs
}

// NewRepo builds a Repo from tracked file paths.
func NewRepo(files []string) *Repo {
	r := &Repo{Files: map[string]bool{}, Dirs: map[string]bool{".": true}, Tests: map[string]bool{}}
	for _, f := range files {
		r.Files[f] = true
		for d := path.Dir(f); d != "." && !r.Dirs[d]; d = path.Dir(d) {
			r.Dirs[d] = true
		}
	}
	return r
}

// Problem is one finding, printed as FILE:LINE: MSG.
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) String() string { return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg) }

// Counts says how much a check looked at.
type Counts struct{ Links, Names int }

var (
	testFuncRE = regexp.MustCompile(`^func\s+((?:Test|Benchmark|Fuzz)\w*)\s*[(\[]`)
	// A cited name: Test/Benchmark/Fuzz, then not a lowercase letter (as
	// go test requires), then an optional * (prefix) or /subtest.
	citedRE = regexp.MustCompile(`\b((?:Test|Benchmark|Fuzz)[A-Z0-9_][A-Za-z0-9_]*)(\*|/[A-Za-z0-9_.,=+-]+)?`)
	// [text](target "title"); the text may span lines, the target may be
	// in <>. Images (![alt](target)) match too.
	inlineLinkRE = regexp.MustCompile(`\[[^\]]*\]\(\s*<?([^()\s<>]*)>?(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)`)
	refDefRE     = regexp.MustCompile(`(?m)^ {0,3}\[[^\]]+\]:[ \t]*<?([^\s<>]+)>?`)
	schemeRE     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
	fenceRE      = regexp.MustCompile("^[ \t]*(`{3,}|~{3,})")
)

// AddTests records the test funcs of one tracked file: a *_test.go file's
// own funcs, or the funcs a patch's hunks hold (added or as context) in the
// _test.go files it touches.
func (r *Repo) AddTests(name string, content []byte) {
	isPatch := strings.HasSuffix(name, ".patch")
	inTest := false
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if !isPatch {
			if m := testFuncRE.FindStringSubmatch(line); m != nil {
				r.Tests[m[1]] = true
			}
			continue
		}
		switch {
		case strings.HasPrefix(line, "+++ "):
			inTest = strings.HasSuffix(strings.TrimSpace(line[4:]), "_test.go")
		case inTest && (strings.HasPrefix(line, "+") || strings.HasPrefix(line, " ")):
			if m := testFuncRE.FindStringSubmatch(line[1:]); m != nil {
				r.Tests[m[1]] = true
			}
		}
	}
}

// hasTest reports whether name (as cited, maybe with * or /subtest) is defined.
func (r *Repo) hasTest(name, suffix string) bool {
	if suffix == "*" {
		for t := range r.Tests {
			if strings.HasPrefix(t, name) {
				return true
			}
		}
		return false
	}
	return r.Tests[name]
}

// linkTarget resolves a link target of the doc at file; ok is false when the
// target is not checked (a scheme, a pure anchor).
func linkTarget(file, target string) (resolved string, ok bool) {
	if target == "" || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "//") || schemeRE.MatchString(target) {
		return "", false
	}
	if i := strings.IndexAny(target, "#?"); i >= 0 {
		target = target[:i]
	}
	if u, err := url.PathUnescape(target); err == nil {
		target = u
	}
	if target == "" {
		return "", false
	}
	if strings.HasPrefix(target, "/") {
		return path.Clean(strings.TrimLeft(target, "/")), true
	}
	return path.Join(path.Dir(file), target), true
}

func (r *Repo) exists(p string) bool {
	if p == ".." || strings.HasPrefix(p, "../") {
		return false // outside the repository
	}
	return r.Files[p] || r.Dirs[p]
}

// CheckDoc checks one Markdown file.
func (r *Repo) CheckDoc(file string, content []byte) ([]Problem, Counts) {
	var probs []Problem
	var n Counts
	lines := strings.Split(string(content), "\n")

	// names checks the names cited in code text that starts on line.
	names := func(text string, line int) {
		for _, m := range citedRE.FindAllStringSubmatchIndex(text, -1) {
			n.Names++
			name, suffix := text[m[2]:m[3]], ""
			if m[4] >= 0 {
				suffix = text[m[4]:m[5]]
			}
			if !r.hasTest(name, suffix) {
				at := line + strings.Count(text[:m[0]], "\n")
				probs = append(probs, Problem{file, at, "no test named " + name + suffix})
			}
		}
	}

	// Prose: paragraphs (runs of non-blank lines outside fences), so that
	// code spans and link texts may wrap.
	var para []string
	paraStart := 0
	flush := func() {
		if len(para) > 0 {
			r.checkProse(file, paraStart, strings.Join(para, "\n"), &probs, &n, names)
		}
		para = nil
	}
	fence := ""
	for i, line := range lines {
		if fence != "" {
			if m := fenceRE.FindStringSubmatch(line); m != nil && m[1][0] == fence[0] && len(m[1]) >= len(fence) && strings.TrimSpace(line[len(m[0]):]) == "" {
				fence = ""
				continue
			}
			names(line, i+1)
			continue
		}
		if m := fenceRE.FindStringSubmatch(line); m != nil {
			flush()
			fence = m[1]
			continue
		}
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if len(para) == 0 {
			paraStart = i + 1
		}
		para = append(para, line)
	}
	flush()
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
	return probs, n
}

// checkProse checks one paragraph starting at line first: test names in its
// code spans, links outside them.
func (r *Repo) checkProse(file string, first int, text string, probs *[]Problem, n *Counts, names func(string, int)) {
	lineAt := func(off int) int { return first + strings.Count(text[:off], "\n") }
	// Blank out code spans (keeping newlines, so offsets hold) and check
	// the names in them. A run of N backticks opens a span that the next run
	// of exactly N closes; an unclosed run is literal text.
	plain := []byte(text)
	for i := 0; i < len(text); {
		if text[i] == '\\' {
			i += 2
			continue
		}
		if text[i] != '`' {
			i++
			continue
		}
		j := i
		for j < len(text) && text[j] == '`' {
			j++
		}
		run := j - i
		end := -1
		for k := j; k < len(text); {
			if text[k] != '`' {
				k++
				continue
			}
			l := k
			for l < len(text) && text[l] == '`' {
				l++
			}
			if l-k == run {
				end = k
				break
			}
			k = l
		}
		if end < 0 {
			i = j
			continue
		}
		names(text[j:end], lineAt(j))
		for k := i; k < end+run; k++ {
			if plain[k] != '\n' {
				plain[k] = ' '
			}
		}
		i = end + run
	}
	check := func(target string, off int) {
		p, ok := linkTarget(file, target)
		if !ok {
			return
		}
		n.Links++
		if !r.exists(p) {
			*probs = append(*probs, Problem{file, lineAt(off), "broken link " + target})
		}
	}
	for _, m := range inlineLinkRE.FindAllSubmatchIndex(plain, -1) {
		check(string(plain[m[2]:m[3]]), m[2])
	}
	for _, m := range refDefRE.FindAllSubmatchIndex(plain, -1) {
		check(string(plain[m[2]:m[3]]), m[2])
	}
}

func git(args ...string) ([]byte, error) {
	out, err := exec.Command("git", args...).Output()
	if ee, ok := err.(*exec.ExitError); ok {
		return nil, fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, ee.Stderr)
	}
	return out, err
}

func run() (int, error) {
	top, err := git("rev-parse", "--show-toplevel")
	if err != nil {
		return 2, err
	}
	if err := os.Chdir(strings.TrimSpace(string(top))); err != nil {
		return 2, err
	}
	out, err := git("ls-files", "-z")
	if err != nil {
		return 2, err
	}
	var files, docs []string
	for _, f := range strings.Split(string(out), "\x00") {
		if f == "" {
			continue
		}
		if _, err := os.Lstat(f); err != nil {
			continue // deleted in the work tree, not yet in the index
		}
		files = append(files, f)
		if strings.HasSuffix(f, ".md") {
			docs = append(docs, f)
		}
	}
	repo := NewRepo(files)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || strings.HasSuffix(f, ".patch") {
			b, err := os.ReadFile(f)
			if err != nil {
				return 2, err
			}
			repo.AddTests(f, b)
		}
	}
	sort.Strings(docs)
	var all []Problem
	var total Counts
	for _, f := range docs {
		b, err := os.ReadFile(f)
		if err != nil {
			return 2, err
		}
		probs, n := repo.CheckDoc(f, b)
		all = append(all, probs...)
		total.Links += n.Links
		total.Names += n.Names
	}
	for _, p := range all {
		fmt.Println(p)
	}
	if len(all) > 0 {
		return 1, nil
	}
	fmt.Printf("check-docs: %d files, %d links, %d test names, all resolve\n", len(docs), total.Links, total.Names)
	return 0, nil
}

func main() {
	code, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "check-docs:", err)
	}
	os.Exit(code)
}
