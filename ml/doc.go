// Package ml holds this fork's additions to upstream's ml package: the one
// library-preference function that DeviceInfo.PreferredLibrary calls.
package ml
