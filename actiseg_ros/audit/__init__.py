"""`actiseg audit`: rank a data set's labels by how suspicious a trained model finds them."""
