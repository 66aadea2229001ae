package pan

// AppendMasked exposes appendMasked to the external tests, which build
// Mask's expected output from Find's matches.
var AppendMasked = appendMasked
