// Command overlay checks this fork's overlay packages against an upstream
// tree and copies them into it.
//
// Overlay files are this project's own Go files in top-level folders named
// like upstream packages (discover/, envconfig/, ...). In the assembled tree
// they join upstream's package of the same name, so they may only add: a file
// upstream already has, a top-level name upstream's package already declares,
// or a file that imports both the overlay and upstream copy of one package is
// an error, reported with the names involved.
//
// An overlay package may also be new: a folder inside another overlay
// package (discover/gpuwatch inside discover) that upstream has no Go
// package for. It is copied whole, doc.go included (there is no upstream
// package it joins), and its files must be package <folder name>.
//
// Usage:
//
//	overlay check -tree DIR [-module PATH] PKG...
//	overlay apply -tree DIR [-module PATH] PKG...
//
// PKG is a folder of this repository, relative to its root (e.g. discover).
// check only reports; apply checks and then copies, rewriting imports of
// this module's overlay packages to upstream's import path.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

const upstreamModule = "github.com/ollama/ollama"

// moduleOnly are files that describe the overlay inside this module and have
// no place in upstream's package.
var moduleOnly = map[string]bool{"doc.go": true}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "check" && os.Args[1] != "apply") {
		fmt.Fprintln(os.Stderr, "usage: overlay check|apply -tree DIR [-module PATH] PKG...")
		os.Exit(2)
	}
	cmd := os.Args[1]
	fl := flag.NewFlagSet(cmd, flag.ExitOnError)
	tree := fl.String("tree", "", "upstream source tree to check against (and copy into, for apply)")
	module := fl.String("module", "github.com/costa-os/ollama-backend-select", "this module's path")
	fl.Parse(os.Args[2:])
	if *tree == "" || fl.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: overlay check|apply -tree DIR [-module PATH] PKG...")
		os.Exit(2)
	}

	o := overlay{tree: *tree, module: *module, pkgs: fl.Args()}
	files, problems := o.check()
	if len(problems) > 0 {
		fmt.Fprintln(os.Stderr, "overlay: the overlay breaks its rules (see CONTRIBUTING.md, \"Overlay files\"):")
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "  "+p)
		}
		os.Exit(1)
	}
	if cmd == "apply" {
		if err := o.apply(files); err != nil {
			fmt.Fprintln(os.Stderr, "overlay:", err)
			os.Exit(1)
		}
	}
}

type overlay struct {
	tree   string   // upstream tree
	module string   // this module's import path
	pkgs   []string // overlay package folders, relative, slash-separated
}

// overlayFile is one file to copy: its path relative to the repository root,
// which is also its path inside the upstream tree.
type overlayFile struct {
	rel  string
	data []byte
}

// newPackage reports whether the overlay package pkg is one upstream does
// not have: upstream has no Go files in its folder, and the folder lies
// inside another overlay package. A top-level folder upstream lacks is not
// new but a mistake (a typo, or a folder of this module only).
func (o overlay) newPackage(pkg string) bool {
	if hasGoFiles(filepath.Join(o.tree, filepath.FromSlash(pkg))) {
		return false
	}
	for _, other := range o.pkgs {
		if other = path.Clean(filepath.ToSlash(other)); other != pkg && strings.HasPrefix(pkg, other+"/") {
			return true
		}
	}
	return false
}

// check collects the overlay's files and every rule they break.
func (o overlay) check() ([]overlayFile, []string) {
	var files []overlayFile
	var problems []string
	for i, pkg := range o.pkgs {
		o.pkgs[i] = path.Clean(filepath.ToSlash(pkg))
	}
	for _, pkg := range o.pkgs {
		isNew := o.newPackage(pkg)
		err := filepath.WalkDir(filepath.FromSlash(pkg), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel := filepath.ToSlash(p)
			if d.IsDir() {
				if rel == pkg || strings.Contains(rel+"/", "/testdata/") {
					return nil // testdata travels with its package
				}
				if slices.Contains(o.pkgs, rel) {
					return filepath.SkipDir // a nested overlay package: its own walk takes it
				}
				// A sub-folder that is a Go package of its own must be listed as
				// an overlay package.
				if hasGoFiles(p) {
					problems = append(problems, fmt.Sprintf("%s: a Go package inside an overlay package; list it as an overlay package or move it", rel))
					return filepath.SkipDir
				}
				return nil
			}
			if moduleOnly[d.Name()] && !isNew && !strings.Contains(rel, "/testdata/") {
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if _, err := os.Stat(filepath.Join(o.tree, filepath.FromSlash(rel))); err == nil {
				problems = append(problems, fmt.Sprintf("%s: upstream already has this file; overlay files only add, change upstream files with a patch", rel))
			}
			files = append(files, overlayFile{rel: rel, data: data})
			return nil
		})
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", pkg, err))
		}
	}

	upstreamDecls := map[string]map[string]string{} // dir -> "pkg.name" -> file
	for _, f := range files {
		if !strings.HasSuffix(f.rel, ".go") || strings.Contains(f.rel, "/testdata/") {
			continue
		}
		dir := path.Dir(f.rel)
		if _, ok := upstreamDecls[dir]; !ok {
			decls, err := packageDecls(filepath.Join(o.tree, filepath.FromSlash(dir)))
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: reading upstream's package: %v", dir, err))
			}
			upstreamDecls[dir] = decls
		}
		problems = append(problems, o.checkFile(f, upstreamDecls[dir], o.newPackage(dir))...)
	}
	return files, problems
}

// checkFile reports the rules one overlay Go file breaks. isNew says that
// its package is one upstream does not have (newPackage).
func (o overlay) checkFile(f overlayFile, upstream map[string]string, isNew bool) []string {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, f.rel, f.data, parser.ImportsOnly|parser.ParseComments)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	dir := path.Dir(f.rel)
	switch name := strings.TrimSuffix(file.Name.Name, "_test"); {
	case isNew:
		if name != path.Base(dir) {
			problems = append(problems, fmt.Sprintf("%s: package %s in the new package %s; name it %s, after its folder", f.rel, file.Name.Name, dir, path.Base(dir)))
		}
	case len(upstream) == 0:
		problems = append(problems, fmt.Sprintf("%s: upstream has no Go package %s to join (a new package must lie inside another overlay package)", f.rel, dir))
	case !hasPackage(upstream, file.Name.Name) && !strings.HasSuffix(file.Name.Name, "_test"):
		problems = append(problems, fmt.Sprintf("%s: package %s, but upstream's %s is package %s", f.rel, file.Name.Name, dir, anyPackage(upstream)))
	}

	imported := map[string]string{} // upstream-relative package -> import path as written
	for _, spec := range file.Imports {
		ip, _ := strconv.Unquote(spec.Path.Value)
		var rel string
		switch {
		case strings.HasPrefix(ip, o.module+"/"):
			rel = strings.TrimPrefix(ip, o.module+"/")
			if !slices.Contains(o.pkgs, rel) {
				problems = append(problems, fmt.Sprintf("%s: imports %s, which is not an overlay package (only overlay packages join upstream's tree)", f.rel, ip))
			}
		case strings.HasPrefix(ip, upstreamModule+"/"):
			rel = strings.TrimPrefix(ip, upstreamModule+"/")
		default:
			continue
		}
		if prev, ok := imported[rel]; ok && prev != ip {
			problems = append(problems, fmt.Sprintf("%s: imports both %s and %s, which are one package once assembled", f.rel, prev, ip))
		}
		imported[rel] = ip
	}

	full, err := parser.ParseFile(fset, f.rel, f.data, parser.SkipObjectResolution)
	if err != nil {
		return append(problems, err.Error())
	}
	for _, name := range topLevelNames(full) {
		if where, ok := upstream[file.Name.Name+"."+name]; ok {
			problems = append(problems, fmt.Sprintf("%s: declares %s, which upstream's %s/%s already declares; rename it", f.rel, name, dir, where))
		}
	}
	return problems
}

// apply copies the overlay files into the tree, rewriting imports.
func (o overlay) apply(files []overlayFile) error {
	for _, f := range files {
		data := f.data
		if strings.HasSuffix(f.rel, ".go") && !strings.Contains(f.rel, "/testdata/") {
			var err error
			if data, err = o.rewriteImports(f); err != nil {
				return err
			}
		}
		dst := filepath.Join(o.tree, filepath.FromSlash(f.rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// rewriteImports points imports of this module's overlay packages at
// upstream's import path, leaving the rest of the file as written.
func (o overlay) rewriteImports(f overlayFile) ([]byte, error) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, f.rel, f.data, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	changed := false
	for _, spec := range file.Imports {
		ip, _ := strconv.Unquote(spec.Path.Value)
		if strings.HasPrefix(ip, o.module+"/") {
			spec.Path.Value = strconv.Quote(upstreamModule + "/" + strings.TrimPrefix(ip, o.module+"/"))
			changed = true
		}
	}
	if !changed {
		return f.data, nil
	}
	var buf bytes.Buffer
	if err := format.Node(&buf, fset, file); err != nil {
		return nil, fmt.Errorf("%s: %w", f.rel, err)
	}
	return buf.Bytes(), nil
}

// packageDecls maps "package.name" of every top-level declaration in the Go
// files of dir (all build tags, tests included) to the file declaring it.
// Methods are keyed as "package.Type.Method".
func packageDecls(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	} else if err != nil {
		return nil, err
	}
	decls := map[string]string{}
	fset := token.NewFileSet()
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") {
			continue
		}
		file, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		decls[file.Name.Name+"."] = e.Name() // records the package name itself
		for _, name := range topLevelNames(file) {
			decls[file.Name.Name+"."+name] = e.Name()
		}
	}
	return decls, nil
}

func topLevelNames(file *ast.File) []string {
	var names []string
	for _, decl := range file.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if d.Name.Name == "init" || d.Name.Name == "_" {
				continue
			}
			if d.Recv != nil && len(d.Recv.List) == 1 {
				names = append(names, receiverType(d.Recv.List[0].Type)+"."+d.Name.Name)
			} else {
				names = append(names, d.Name.Name)
			}
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					names = append(names, s.Name.Name)
				case *ast.ValueSpec:
					for _, n := range s.Names {
						if n.Name != "_" {
							names = append(names, n.Name)
						}
					}
				}
			}
		}
	}
	return names
}

func receiverType(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return receiverType(t.X)
	case *ast.IndexExpr:
		return receiverType(t.X)
	case *ast.IndexListExpr:
		return receiverType(t.X)
	case *ast.Ident:
		return t.Name
	}
	return "?"
}

func hasPackage(decls map[string]string, name string) bool {
	_, ok := decls[name+"."]
	return ok
}

func anyPackage(decls map[string]string) string {
	var names []string
	for k := range decls {
		if strings.HasSuffix(k, ".") && !strings.HasSuffix(k, "_test.") {
			names = append(names, strings.TrimSuffix(k, "."))
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func hasGoFiles(dir string) bool {
	matches, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	return len(matches) > 0
}
