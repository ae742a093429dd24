// The pull requests' own files (upstream/pr/*/*/add/) belong to upstream's
// packages and compile only inside the tree scripts/pr.sh assembles; this
// file keeps them out of this module's ./... (go vet, go test).
module ollama-backend-select/upstream-pr

go 1.26
