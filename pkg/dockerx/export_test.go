package dockerx

import "context"

// Reattach exposes the endpoint repair to the package's tests.
func Reattach(c *Client, ctx context.Context, id string) error { return c.reattach(ctx, id) }
