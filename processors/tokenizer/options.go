package tokenizer

import (
	"time"

	"github.com/pcistream/pcistream/internal/optcheck"
)

// validate checks the options' values, naming the option at fault.
func (c *cfg) validate() error {
	return optcheck.Check("tokenizer",
		optcheck.AtLeast("IdempotencyWindow", c.window, time.Millisecond),
		optcheck.AtLeast("MaxRecordBytes", c.maxBytes, 1),
		optcheck.AtLeast("StateCacheBytes", c.cacheBytes, 0),
	)
}
