package envconfig

// Shorten cuts a value quoted in an error message to 64 bytes, so that junk
// input does not fill the log line.
func Shorten(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
