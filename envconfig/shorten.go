package envconfig

// Shorten keeps a value quoted in an error message to a readable length:
// its first 64 bytes, then "...". Junk input (a corrupt file, a binary
// sysfs value) would otherwise fill the log line.
func Shorten(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
