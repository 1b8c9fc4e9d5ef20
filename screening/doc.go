// Package screening owns the way from captured fields to a sample's
// verdict, and the results that must never be lost: the per-field pipeline
// (quality gate, white cells, crops, one batched classification), the sample
// and its short ID, the verdict rule, the SQLite result store with its
// content-addressed images, and export for a USB stick.
//
// It knows nothing of devices: the daemon hands it frames and shows what it
// returns. Everything it returns about a field or a sample has been committed
// to storage first, so what a technician saw survives a power cut.
package screening
