// Int8Kernels: see Package.swift for what this room holds.
