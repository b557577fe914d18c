package testutil

// ByteChunks cuts b into one-byte chunks (aliasing b), to feed a streaming
// parser the worst way.
func ByteChunks(b []byte) [][]byte {
	chunks := make([][]byte, len(b))
	for i := range b {
		chunks[i] = b[i : i+1]
	}
	return chunks
}
