#!/usr/bin/env python3
"""Decodes a Mapbox Vector Tile with the `mapbox-vector-tile` package (a decoder nobody on
citypin wrote) and prints {layer: {"version", "extent", "features": [properties...]}} as JSON.
Used by the tile tests in tests/api/tiles.rs."""
import json
import sys

import mapbox_vector_tile

with open(sys.argv[1], "rb") as f:
    data = f.read()
tile = mapbox_vector_tile.decode(data) if data else {}
out = {
    name: {
        "version": layer.get("version"),
        "extent": layer.get("extent"),
        "features": [
            dict(f["properties"], _type=f["geometry"]["type"]) for f in layer["features"]
        ],
    }
    for name, layer in tile.items()
}
json.dump(out, sys.stdout)
