"""``dct-predict``: a trained model's click probabilities for new rows, on one process.

- ``dct.predict.trained``: what a checkpoint was trained on: its model, and the preprocessed
  directory (schema, vocabularies, dense statistics), checked to be still the one it was;
- ``dct.predict.scoring``: new rows read, encoded, scored and written in batches; the command.
"""
