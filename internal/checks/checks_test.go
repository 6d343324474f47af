package checks

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestEveryCheckIsListed parses the whole tree for check.Check literals and fails
// when one carries an ID that All() does not return: a check that exists but is
// not in the explicit list would silently never run.
func TestEveryCheckIsListed(t *testing.T) {
	listed := map[string]bool{}
	for _, c := range All() {
		if listed[c.ID] {
			t.Errorf("check ID %s is listed twice", c.ID)
		}
		listed[c.ID] = true
		if c.ID == "" || c.Title == "" || c.Suite == "" || c.Run == nil {
			t.Errorf("check %+v lacks an ID, title, suite or Run", c.ID)
		}
		if !strings.HasPrefix(c.ID, c.Suite+".") {
			t.Errorf("check %s: ID must start with its suite %q", c.ID, c.Suite)
		}
	}
	root := filepath.Join("..", "..")
	found := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".cache" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".git")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, src, 0)
		if err != nil {
			return err
		}
		var lits []*ast.CompositeLit
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			if isCheckType(lit.Type) {
				lits = append(lits, lit)
			}
			// Elements of a []check.Check literal elide their type.
			if at, ok := lit.Type.(*ast.ArrayType); ok && isCheckType(at.Elt) {
				for _, e := range lit.Elts {
					if el, ok := e.(*ast.CompositeLit); ok && el.Type == nil {
						lits = append(lits, el)
					}
				}
			}
			return true
		})
		for _, lit := range lits {
			for _, e := range lit.Elts {
				kv, ok := e.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "ID" {
					if s, ok := kv.Value.(*ast.BasicLit); ok {
						id, _ := strconv.Unquote(s.Value)
						found++
						if !listed[id] {
							t.Errorf("%s: check %s exists but is not in checks.All()", p, id)
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Fatal("found no check literals at all: the scan is broken")
	}
}

func isCheckType(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.SelectorExpr:
		id, ok := x.X.(*ast.Ident)
		return ok && id.Name == "check" && x.Sel.Name == "Check"
	}
	return false
}
