// Package llm holds this fork's additions to upstream's llm package: which
// backend library files an inference runner may load for the devices it was
// given.
package llm
