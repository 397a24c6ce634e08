"""Conference: case meetings (ケース会議) and the 相談支援包括化推進会議."""
