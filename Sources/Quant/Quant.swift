// Quant: see Package.swift for what this room holds.
