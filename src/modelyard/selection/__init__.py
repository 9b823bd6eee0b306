"""Photo selection from human decisions (a decisions SQLite database): the integrity gate
and inspection report that come before any training, the generator of decision databases
for tests and demos, and (to come) embeddings, the group ranker and the crop proposer."""
