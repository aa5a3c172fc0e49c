module interruptible.test/gosignals

go 1.19
