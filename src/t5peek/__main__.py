from t5peek.cli import main

main()
