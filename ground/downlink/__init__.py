"""What reaches the ground: link rates (`link`), products cut into and rebuilt from CCSDS
packets (`packets`), decoded (`decode`), drawn (`render`) and written as GeoTIFF (`geotiff`)."""
