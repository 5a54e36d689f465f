module pyrt.local/hello

go 1.19
