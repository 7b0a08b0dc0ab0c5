module spindlepeers

go 1.19
