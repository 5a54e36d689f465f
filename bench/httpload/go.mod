module pyrt.local/httpload

go 1.19
