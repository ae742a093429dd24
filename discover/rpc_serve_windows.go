package discover

// Windows has no SIGPIPE: a write to a closed socket fails with an error.
func ignoreSIGPIPE() {}
