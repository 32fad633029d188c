"""Evidence packets: everything about one person, number or call, proven, in one verifiable file."""
