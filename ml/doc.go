// Package ml is the place for this fork's additions to upstream's ml
// package. It holds none today: code here could not name upstream's own
// types (ml.DeviceInfo) in this module, so the library preference lives in
// envconfig (LibraryPreference.Prefer), and a patch makes
// DeviceInfo.PreferredLibrary call it. See CONTRIBUTING.md.
package ml
