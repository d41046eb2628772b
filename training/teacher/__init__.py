"""The CC0 dlib-models gender and age networks as a teacher (issue 16): alignment, the networks,
and pseudo-labels for the real photos that have no gender or age (`mask-train teach`)."""
